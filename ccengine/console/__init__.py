"""The supervisor console (docs/console.md): a live web page at /console.

    feature.py     wiring: what the console reads from the other features
    board.py       what the page shows, as data (queue picture + figures + Redis)
    window.py      service level / ASA / abandonment today and in the last 30 min
    erlang.py      Erlang C: agents needed now
    pages.py       the HTML (every outside text escaped)
    live.py        server-sent events: panels pushed as they change
    web.py         the HTTP resources, sessions, CSRF
    actions.py     listen / whisper / barge, pause, log out, move a caller, tickets; audit log
    accounts.py    console accounts (argon2), sessions, login limit
    recordings.py  call recordings: lookup and the retention sweeper
    cli.py         `ccengine users ...`
"""
