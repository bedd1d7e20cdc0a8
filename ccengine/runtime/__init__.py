"""Run-time plumbing shared by the features: deadlines (timers.py), direct socket writes
(netio.py), periodic services (periodic.py), pending writes drained at shutdown (pending.py)
and the reactor-lag probe (lag.py)."""
