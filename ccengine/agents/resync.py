"""Resync after every AMI login, and relog after an Asterisk restart (the relog Wazo does).

Who is right about what:
- Logins: Redis. The engine is the only place agents log in, so a login in Redis whose member
  is missing from QueueStatus is re-added (QueueAdd), and a member on an agent phone carrying an
  agent number with no login in Redis (a logout whose QueueRemove failed) is removed.
- Member states (pause, ringing, on call): Asterisk after a plain reconnect (events were missed
  while disconnected, QueueStatus has the truth), but Redis after a restart: a restarted
  Asterisk lost its dynamic members (persistentmembers = no), and every agent comes back with
  the pause and reason Redis kept.
Running it twice changes nothing: the plan only acts where the two sides disagree.

Restart detection (transcripts2/ami10_restart): `Event: Shutdown` with `Restart: True` on the
old connection, then, on the new one, a `FullyBooted` whose Uptime is lower than the last one
seen (c1 Uptime 246 -> c3 Uptime 0). The login can succeed BEFORE the boot finished (ami10 c3:
no FullyBooted in the login answer, the broadcast one comes 121 ms later), so the restart
resync also runs again on that FullyBooted. Resyncs never overlap (one lock).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterable, Mapping

from twisted.internet.defer import DeferredLock
from twisted.logger import Logger

from ccengine.agents.state import MemberState, from_member, interface_pattern
from ccengine.ami.protocol import AmiError
from ccengine.queues.picture import Member, member_from
from ccengine.store import keys

log = Logger()


def members_from_status(messages: Iterable[Any]) -> list[Member]:
    """The members of a QueueStatus answer, as the queue picture reads them."""
    out = []
    for message in messages:
        if message.get("Event") == "QueueMember":
            member = member_from(message)
            if member is not None:
                out.append(member)
    return out


@dataclass
class Plan:
    adds: list[tuple[str, str, int, bool, str]] = field(default_factory=list)   # number, queue, penalty, paused, reason
    removes: list[tuple[str, str]] = field(default_factory=list)                 # queue, interface
    pauses: list[tuple[str, str, bool, str]] = field(default_factory=list)      # queue, interface, paused, reason
    states: dict[str, dict[str, MemberState]] = field(default_factory=dict)     # number -> queue -> state


def plan(sessions: Mapping[str, Any], states: Mapping[str, Mapping[str, MemberState]],
         members: list[Member], agent_numbers: set[str], phone_re: re.Pattern,
         restart: bool, now: float, wrapup_seconds: float) -> Plan:
    """What to do so that Asterisk and Redis agree (pure)."""
    out = Plan()
    by_key = {(m.queue, m.interface): m for m in members}
    wanted = set()
    for number, session in sorted(sessions.items()):
        stored_states = states.get(number, {})
        new_states: dict[str, MemberState] = {}
        for queue, penalty in sorted(session.queues.items()):
            wanted.add((queue, session.interface))
            stored = stored_states.get(queue)
            member = by_key.get((queue, session.interface))
            if member is None:
                if stored is not None and stored.state == "paused":
                    out.adds.append((number, queue, penalty, True, stored.reason))
                    new_states[queue] = stored
                else:
                    out.adds.append((number, queue, penalty, False, ""))
                    new_states[queue] = MemberState("idle", "", now)
                continue
            seen = from_member(member, stored, now, wrapup_seconds)
            if restart and stored is not None and _pause_of(stored) != _pause_of(seen):
                paused, reason = _pause_of(stored)
                out.pauses.append((queue, session.interface, paused, reason))
                new_states[queue] = stored if paused else MemberState("idle", "", now)
            else:
                new_states[queue] = seen
        out.states[number] = new_states
    for member in members:
        if (member.queue, member.interface) in wanted:
            continue
        if phone_re.fullmatch(member.interface) and member.name in agent_numbers:
            out.removes.append((member.queue, member.interface))
    return out


def _pause_of(ms: MemberState) -> tuple[bool, str]:
    return (True, ms.reason) if ms.state == "paused" else (False, "")


class Resync:
    def __init__(self, feed: Any, directory: Any, store: Any, actions: Any, settings: Any,
                 clock: Any, metrics: Any, server_of: Any = None):
        self.feed = feed                 # ccengine.queues.feed.QueueFeed
        # Several Asterisk servers: interface -> the server its phone is registered to
        # (AmiServers.server_of_interface); a server's resync concerns its agents only.
        self.server_of = server_of
        self.directory = directory
        self.store = store
        self.actions = actions
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self._phone = interface_pattern(settings.interface_template)
        self._lock = DeferredLock()

    def attach(self, feed: Any, serial: Any) -> None:
        feed.on(("FullyBooted",), lambda msg: serial.run(self.on_fully_booted, msg))
        feed.on(("Shutdown",), lambda msg: serial.run(self.on_shutdown, msg))
        feed.on_status(lambda messages, server: serial.run(self.on_status, messages, server))

    # --- triggers ---------------------------------------------------------------------------
    async def on_status(self, messages: list, server: str | None = None) -> None:
        """After each AMI login, with the queue feed's QueueStatus answer."""
        boot = keys.asterisk_boot(server)
        pending = await self.store.conn.call(lambda r: r.hget(boot, "restart_pending"))
        await self.run(restart=pending == "1", status=messages, server=server)

    async def on_fully_booted(self, msg: Any) -> None:
        try:
            uptime = int(msg.get("Uptime") or "")
        except ValueError:
            return
        server = getattr(msg, "server", "") or None
        boot = keys.asterisk_boot(server)
        last = await self.store.conn.call(lambda r: r.hget(boot, "uptime"))
        await self.store.conn.call(lambda r: r.hset(boot, "uptime", uptime))
        if last is not None and last.isdigit() and uptime < int(last):
            log.warn("Asterisk {server} restarted (Uptime {uptime} < {last}); relogging agents",
                     server=server or "", uptime=uptime, last=last)
            await self.run(restart=True, server=server)

    async def on_shutdown(self, msg: Any) -> None:
        if (msg.get("Restart") or "").lower() == "true":
            boot = keys.asterisk_boot(getattr(msg, "server", "") or None)
            await self.store.conn.call(lambda r: r.hset(boot, "restart_pending", "1"))

    # --- the resync -------------------------------------------------------------------------
    async def run(self, restart: bool = False, status: list | None = None,
                  server: str | None = None) -> Plan:
        """Make Asterisk `server` (the only one by default) and Redis agree, from `status` (a
        QueueStatus answer) or, without it, from a fresh one the queue feed asks for (an
        Asterisk restart)."""
        await self._lock.acquire()
        try:
            return await self._run(restart, status, server)
        finally:
            self._lock.release()

    async def _run(self, restart: bool, status: list | None, server: str | None) -> Plan:
        answer = status if status is not None else await self.feed.refresh(server)
        members = members_from_status(answer)
        everyone = await self.directory.sessions()
        sessions = everyone
        if server is not None and self.server_of is not None:
            # The agents whose phones are registered to this server; a login without a
            # session left states behind on whichever server: those are dropped anywhere.
            sessions = {n: s for n, s in everyone.items()
                        if self.server_of(s.interface) == server}
        agent_numbers = set(await self.directory.numbers())
        known = sorted(set(sessions) | {n for n, _ in self.store.snapshot if n not in everyone})
        states = await self.store.load(known)
        todo = plan(sessions, states, members, agent_numbers, self._phone, restart,
                    self.clock.seconds(), self.settings.wrapup_seconds)
        self.metrics.resyncs.labels("restart" if restart else "reconnect").inc()
        for queue, interface in todo.removes:
            await self._try("remove", self.actions.remove(queue, interface))
        for number, queue, penalty, paused, reason in todo.adds:
            interface = sessions[number].interface
            await self._try("add", self.actions.add(queue, interface, number, penalty, paused,
                                                    reason))
        for queue, interface, paused, reason in todo.pauses:
            await self._try("pause", self.actions.pause(interface, paused, reason, queue))
        for number in known:
            await self._write_states(number, states.get(number, {}), todo.states.get(number, {}))
        if restart:
            boot = keys.asterisk_boot(server)
            await self.store.conn.call(lambda r: r.hdel(boot, "restart_pending"))
        log.info("agent resync ({kind}): {a} added, {r} removed, {p} pause fixes",
                 kind="restart" if restart else "reconnect", a=len(todo.adds),
                 r=len(todo.removes), p=len(todo.pauses))
        return todo

    async def _try(self, what: str, coro: Any) -> None:
        try:
            await coro
        except AmiError as exc:
            log.error("resync {what} failed: {exc}", what=what, exc=exc)
            return
        self.metrics.repairs.labels(what).inc()

    async def _write_states(self, number: str, old: Mapping[str, MemberState],
                            new: Mapping[str, MemberState]) -> None:
        changed = 0
        for queue in sorted(set(old) - set(new)):
            await self.store.drop(number, queue)
            changed += 1
        for queue, ms in sorted(new.items()):
            if old.get(queue) != ms:
                await self.store.put(number, queue, ms)
                changed += 1
        if changed:
            self.metrics.repairs.labels("state").inc(changed)
