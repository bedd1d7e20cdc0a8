"""An AMI server standing in for a busy Asterisk: the event stream of a whole centre.

    python bench/ami_standin.py --agents 2000 --waiting 300 --rate 100 [--resync-every 60]

Prints one JSON line `{"port": N}` when listening on 127.0.0.1. Control on stdin, one JSON line
back per request: `stats` (events sent, actions answered by name, connections, forced
resyncs, the largest write buffer seen). EOF on stdin stops it.

Every block is built from a block Asterisk 22.10.1 sent in a capture (tests/fixtures/ami/*.raw,
copies of ../shared/asterisk/transcripts2 and transcripts3): the same fields in the same order,
only the values that name a call, a member or a moment replaced. Kinds and their captures:
QueueCallerJoin, QueueCallerLeave, AgentCalled, AgentConnect, AgentComplete
(load_2cps_queue_events: the engine's own dialplan); QueueMemberStatus, VarSet, Newexten,
DeviceStateChange (ami5_originate); QueueParams, QueueMember, QueueEntry, QueueStatusComplete
(ami6_queue_priority_withdraw); the banner, Login's answer and FullyBooted (ami4, ami10);
QueueAdd's and QueuePause's answers (c_member_actions).

The centre it plays (`--agents A`, `--waiting W`, `--rate R` calls/s, `--handle H` calls in
talk): call n arrives at tick n (R ticks a second): its dialplan steps (Newexten x 20, VarSet x
14) and QueueCallerJoin at the back of its queue (Position = the count after it joined). Call
n-W leaves the queue at the same tick, just before: its agent is rung (AgentCalled,
QueueMemberStatus ringing, DeviceStateChange), answers (QueueCallerLeave from position 1,
AgentConnect, QueueMemberStatus in use, DeviceStateChange).
Call n-W-H ends (AgentComplete, QueueMemberStatus not in use, DeviceStateChange). The agent of
call k is agent k mod A (round robin, one queue per agent: every fifth agent in `complaint`,
the others in `inbound`; call k waits in its agent's queue), so W callers wait all the time and
H agents talk (H defaults to 3/4 of A; H < A so an agent is free when rung again). At R = 100:
4,600 events/s, 600 of them member events the agents' state tracker handles (AgentCalled,
AgentConnect, AgentComplete and three QueueMemberStatus per call), 200 caller events for the
queue picture. By Little's law the W callers wait W/R seconds (3 s for 300 at 100/s) and a call
talks H/R seconds (15 s for 1,500): a centre of 2,000 agents taking 100 calls/s has very short
calls; the bench is about the engine's event rate, not a staffing model.

QueueStatus is answered with the centre as it is at that moment (every member, its state; every
waiting caller). Members added by QueueAdd (agent logins) are in later answers and get no
calls. Every `--resync-every` seconds the stand-in drops every connection (as a restarted
network or Asterisk's own `Connection timed out` would): the engine's client reconnects, logs
in and resyncs from a fresh QueueStatus, as it does after every reconnect.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import deque
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ami"
TICK = 0.010
NEWEXTEN_PER_CALL = 20
# The variables the hotline dialplan sets on a routed caller before Queue()
# (dialplans/extensions_ccengine.conf, [ccengine-hotline] and [ccengine-wait]).
VARSETS = ("CC_ROUTE_OK", "CC_ACTION", "CC_QUEUE", "CC_PRIORITY", "CC_CATEGORY",
           "CC_ANNOUNCE_EVERY", "CC_ANNOUNCE_ACTION", "AGIEXITONHANGUP", "AGISTATUS",
           "CCENGINE_AGI_USED", "__CCENGINE_QUEUE", "__CC_WAIT_SINCE", "CCENGINE_PLACE",
           "QUEUE_PRIO")
# Where each kind's captured block comes from.
SOURCES = {
    "QueueCallerJoin": "load_2cps_queue_events.raw",
    "QueueCallerLeave": "load_2cps_queue_events.raw",
    "AgentCalled": "load_2cps_queue_events.raw",
    "AgentConnect": "load_2cps_queue_events.raw",
    "AgentComplete": "load_2cps_queue_events.raw",
    "QueueMemberStatus": "ami5_originate.ami.c1.from_asterisk.raw",
    "VarSet": "ami5_originate.ami.c1.from_asterisk.raw",
    "Newexten": "ami5_originate.ami.c1.from_asterisk.raw",
    "DeviceStateChange": "ami5_originate.ami.c1.from_asterisk.raw",
    "QueueParams": "ami6_queue_priority_withdraw.ami.c1.from_asterisk.raw",
    "QueueMember": "ami6_queue_priority_withdraw.ami.c1.from_asterisk.raw",
    "QueueEntry": "ami6_queue_priority_withdraw.ami.c1.from_asterisk.raw",
    "QueueStatusComplete": "ami6_queue_priority_withdraw.ami.c1.from_asterisk.raw",
    "FullyBooted": "ami4_login_ping_events.ami.c1.from_asterisk.raw",
}
DEVICE_STATE = {"1": "NOT_INUSE", "2": "INUSE", "6": "RINGING"}


def captured_block(kind: str) -> list[tuple[str, str]]:
    """The fields of the first `Event: kind` block of its capture, in order."""
    data = (FIXTURES / SOURCES[kind]).read_bytes()
    for block in data.split(b"\r\n\r\n"):
        lines = block.strip(b"\r\n").split(b"\r\n")
        if lines and lines[0] == b"Event: " + kind.encode():
            return [tuple(line.decode().split(": ", 1)) if b": " in line
                    else (line.decode().rstrip(":"), "") for line in lines]
    raise LookupError(f"no {kind} block in {SOURCES[kind]}")


class Template:
    """A captured block with some fields' values replaced per event."""

    def __init__(self, kind: str, drop: tuple[str, ...] = ()) -> None:
        self.fields = [(k, v) for k, v in captured_block(kind) if k not in drop]
        self.names = {k for k, _ in self.fields}

    def render(self, values: dict[str, object]) -> bytes:
        for key in values:
            if key not in self.names:
                raise KeyError(f"{key} is not a field of the captured block")
        return ("".join(f"{k}: {values.get(k, v)}\r\n" for k, v in self.fields)
                + "\r\n").encode()


class Centre:
    """The state of the centre at call counter n, and the blocks that describe it."""

    def __init__(self, agents: int, waiting: int, handle: int) -> None:
        self.agents, self.waiting, self.handle = agents, waiting, handle
        self.n = waiting + handle            # calls before the start: the centre is full
        self.epoch = int(time.time())
        self.t = {kind: Template(kind) for kind in SOURCES}
        self.added: dict[tuple[str, str], str] = {}    # (queue, interface) -> member name
        # Each queue's waiting calls in Asterisk's order (position 1 first).
        self.lines: dict[str, deque[int]] = {"inbound": deque(), "complaint": deque()}
        for call in range(self.n - waiting, self.n):
            self.lines[self._queue_of_call(call)].append(call)

    # --- who is who -----------------------------------------------------------------------
    @staticmethod
    def number(agent: int) -> str:
        return str(10000 + agent)

    def agent_of(self, call: int) -> int:
        return call % self.agents

    def queue_of_agent(self, agent: int) -> str:
        return "complaint" if agent % 5 == 0 else "inbound"

    def uniqueid(self, call: int) -> str:
        return f"{self.epoch}.{call}"

    @staticmethod
    def channel(call: int) -> str:
        return f"PJSIP/caller-{call & 0xffffffff:08x}"

    def talking_calls(self) -> range:
        return range(self.n - self.waiting - self.handle, self.n - self.waiting)

    # --- the stream -----------------------------------------------------------------------
    def next_call(self, now: float) -> list[bytes]:
        """Everything Asterisk says at one tick: call n-W is answered (it leaves from position
        1 of its queue), call n arrives (joins at the back of its own), call n-W-H ends."""
        n = self.n
        self.n += 1
        out = self._answered(n - self.waiting, now) if self.waiting else []
        out += self._arrival(n, now)
        if not self.waiting:
            out += self._answered(n, now)
        out += self._ended(n - self.waiting - self.handle, now)
        return out

    def _caller_values(self, call: int, now: float) -> dict[str, object]:
        return {"Timestamp": f"{now:.6f}", "Channel": self.channel(call),
                "CallerIDNum": f"139{call % 100_000_000:08d}", "CallerIDName": "CC Caller",
                "Uniqueid": self.uniqueid(call), "Linkedid": self.uniqueid(call)}

    def _arrival(self, call: int, now: float) -> list[bytes]:
        values = self._caller_values(call, now)
        values.update(Context="ccengine-hotline", Exten="s")
        out = []
        for priority in range(1, NEWEXTEN_PER_CALL + 1):
            out.append(self.t["Newexten"].render({**values, "Priority": priority,
                                                  "Extension": "s", "Application": "Set",
                                                  "AppData": "CC_ROUTE_OK="}))
        for variable in VARSETS:
            out.append(self.t["VarSet"].render({**values, "Variable": variable, "Value": "1"}))
        queue = self.queue_of_agent(self.agent_of(call))
        line = self.lines[queue]
        line.append(call)
        count = len(line)
        out.append(self.t["QueueCallerJoin"].render({
            **self._caller_values(call, now), "Queue": queue, "Position": count,
            "Count": count}))
        return out

    def _queue_of_call(self, call: int) -> str:
        return self.queue_of_agent(self.agent_of(call))

    def _agent_values(self, call: int, now: float) -> dict[str, object]:
        agent = self.agent_of(call)
        number = self.number(agent)
        return {**self._caller_values(call, now), "Queue": self.queue_of_agent(agent),
                "Interface": f"PJSIP/{number}", "MemberName": number,
                "DestChannel": f"PJSIP/{number}-{call & 0xffffffff:08x}",
                "DestCallerIDNum": number, "DestCallerIDName": f"Agent {number}",
                "DestUniqueid": f"{self.epoch}.a{call}"}

    def _member_status(self, call: int, now: float, status: str) -> list[bytes]:
        agent = self.agent_of(call)
        number = self.number(agent)
        member = self.t["QueueMemberStatus"].render({
            "Timestamp": f"{now:.6f}", "Queue": self.queue_of_agent(agent),
            "MemberName": number, "Interface": f"PJSIP/{number}",
            "StateInterface": f"PJSIP/{number}", "Membership": "dynamic",
            "InCall": 1 if status == "2" else 0, "Status": status,
            "LastCall": int(now) if status == "1" else 0})
        device = self.t["DeviceStateChange"].render({
            "Timestamp": f"{now:.6f}", "Device": f"PJSIP/{number}",
            "State": DEVICE_STATE[status]})
        return [member, device]

    def _answered(self, call: int, now: float) -> list[bytes]:
        values = self._agent_values(call, now)
        line = self.lines[values["Queue"]]
        position = line.index(call) + 1
        line.remove(call)
        left = len(line)
        queue = values["Queue"]
        out = [self.t["AgentCalled"].render(values)]
        out += self._member_status(call, now, "6")
        out.append(self.t["QueueCallerLeave"].render({
            **self._caller_values(call, now), "Queue": queue, "Position": position,
            "Count": left}))
        out.append(self.t["AgentConnect"].render({**values, "HoldTime": self.waiting // 100,
                                                  "RingTime": 0}))
        out += self._member_status(call, now, "2")
        return out

    def _ended(self, call: int, now: float) -> list[bytes]:
        values = self._agent_values(call, now)
        out = [self.t["AgentComplete"].render({**values, "HoldTime": 3,
                                               "TalkTime": self.handle // 100,
                                               "Reason": "caller"})]
        out += self._member_status(call, now, "1")
        return out

    # --- QueueStatus ----------------------------------------------------------------------
    def queue_status(self, action_id: str, now: float) -> bytes:
        talking = {self.agent_of(c) for c in self.talking_calls()}
        items: list[bytes] = []
        for queue in ("inbound", "complaint"):
            waiting = list(self.lines[queue])
            items.append(self.t["QueueParams"].render({
                "Queue": queue, "Calls": len(waiting), "ActionID": action_id}))
            for agent in range(self.agents):
                if self.queue_of_agent(agent) != queue:
                    continue
                number = self.number(agent)
                items.append(self.t["QueueMember"].render({
                    "Queue": queue, "Name": number, "Location": f"PJSIP/{number}",
                    "StateInterface": f"PJSIP/{number}", "Membership": "dynamic",
                    "InCall": int(agent in talking), "Status": "2" if agent in talking else "1",
                    "Paused": 0, "PausedReason": "", "LastPause": 0, "ActionID": action_id}))
            for (q, interface), name in sorted(self.added.items()):
                if q == queue:
                    items.append(self.t["QueueMember"].render({
                        "Queue": queue, "Name": name, "Location": interface,
                        "StateInterface": interface, "Membership": "dynamic", "InCall": 0,
                        "Status": "1", "Paused": 0, "PausedReason": "", "LastPause": 0,
                        "ActionID": action_id}))
            for position, call in enumerate(waiting, 1):
                items.append(self.t["QueueEntry"].render({
                    "Queue": queue, "Position": position, "Channel": self.channel(call),
                    "Uniqueid": self.uniqueid(call), "CallerIDNum": f"139{call:08d}",
                    "Wait": (self.n - call) // 100, "Priority": 0, "ActionID": action_id}))
        head = (f"Response: Success\r\nActionID: {action_id}\r\nEventList: start\r\n"
                f"Message: Queue status will follow\r\n\r\n").encode()
        tail = self.t["QueueStatusComplete"].render({"ActionID": action_id,
                                                     "ListItems": len(items)})
        return head + b"".join(items) + tail


class Server:
    def __init__(self, centre: Centre, rate: float, resync_every: float) -> None:
        self.centre = centre
        self.rate = rate
        self.resync_every = resync_every
        self.started = time.monotonic()
        self.clients: list[AmiSession] = []
        self.stats = {"events": 0, "connections": 0, "forced_resyncs": 0, "actions": {},
                      "max_write_buffer": 0, "calls": 0}

    async def run(self) -> None:
        begin = time.monotonic()
        done = 0.0
        next_resync = begin + self.resync_every if self.resync_every > 0 else None
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            due = int((now - begin) * self.rate) - done
            if due > 0:
                wall = time.time()
                blocks: list[bytes] = []
                for _ in range(int(due)):
                    blocks += self.centre.next_call(wall)
                done += int(due)
                self.stats["calls"] += int(due)
                data = b"".join(blocks)
                for client in self.clients:
                    if client.logged_in:
                        client.transport.write(data)
                        self.stats["events"] += len(blocks)
                        size = client.transport.get_write_buffer_size()
                        if size > self.stats["max_write_buffer"]:
                            self.stats["max_write_buffer"] = size
            if next_resync is not None and now >= next_resync:
                next_resync = now + self.resync_every
                if self.clients:
                    self.stats["forced_resyncs"] += 1
                for client in list(self.clients):
                    client.transport.abort()

    def uptime(self) -> int:
        # Never lower than the last one the engine saw: a lower Uptime means a restart to it.
        return 1000 + int(time.monotonic() - self.started)


class AmiSession(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = b""
        self.logged_in = False
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.clients.append(self)
        self.server.stats["connections"] += 1
        transport.write(b"Asterisk Call Manager/11.0.0\r\n")   # ami4's banner

    def connection_lost(self, exc) -> None:
        if self in self.server.clients:
            self.server.clients.remove(self)

    def data_received(self, data: bytes) -> None:
        *blocks, self.buffer = (self.buffer + data).split(b"\r\n\r\n")
        for block in blocks:
            fields = {}
            for line in block.split(b"\r\n"):
                key, _, value = line.decode("utf-8", "replace").partition(":")
                fields[key.strip().lower()] = value.strip()
            self.transport.write(self.answer(fields))

    def answer(self, fields: dict[str, str]) -> bytes:
        action = fields.get("action", "").lower()
        action_id = fields.get("actionid", "")
        counts = self.server.stats["actions"]
        counts[action] = counts.get(action, 0) + 1
        ok = f"Response: Success\r\nActionID: {action_id}\r\n"
        centre = self.server.centre
        if action == "login":
            self.logged_in = True
            booted = centre.t["FullyBooted"].render({"Uptime": self.server.uptime(),
                                                     "LastReload": self.server.uptime()})
            return (ok + "Message: Authentication accepted\r\n\r\n").encode() + booted
        if action == "ping":
            return (ok + f"Ping: Pong\r\nTimestamp: {time.time():.6f}\r\n\r\n").encode()
        if action == "events":
            return (ok + f"Events: {fields.get('eventmask', 'on').capitalize()}\r\n\r\n").encode()
        if action == "queuestatus":
            return centre.queue_status(action_id, time.time())
        if action == "queueadd":
            centre.added[(fields.get("queue", ""), fields.get("interface", ""))] = \
                fields.get("membername", "")
            return (ok + "Message: Added interface to queue\r\n\r\n").encode()
        if action == "queueremove":
            centre.added.pop((fields.get("queue", ""), fields.get("interface", "")), None)
            return (ok + "Message: Removed interface from queue\r\n\r\n").encode()
        if action == "queuepause":
            return (ok + "Message: Interface paused successfully\r\n\r\n").encode()
        if action == "coreshowchannels":
            return (ok + "EventList: start\r\nMessage: Channels will follow\r\n\r\n"
                    f"Event: CoreShowChannelsComplete\r\nActionID: {action_id}\r\n"
                    "EventList: Complete\r\nListItems: 0\r\n\r\n").encode()
        return (f"Response: Error\r\nActionID: {action_id}\r\n"
                f"Message: Invalid/unknown command\r\n\r\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--waiting", type=int, default=300)
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second")
    parser.add_argument("--handle", type=int, help="calls in talk (default 3/4 of --agents)")
    parser.add_argument("--resync-every", type=float, default=60.0,
                        help="drop every connection this often (s; 0: never)")
    parser.add_argument("--cpu", type=int, default=-1, help="core to pin to (-1: none)")
    args = parser.parse_args()
    if 0 <= args.cpu < os.cpu_count():
        os.sched_setaffinity(0, {args.cpu})
    handle = args.handle if args.handle is not None else args.agents * 3 // 4
    if not 0 <= handle < args.agents:
        raise SystemExit("--handle must be below --agents (an agent must be free when rung)")
    asyncio.run(serve(Centre(args.agents, args.waiting, handle), args))


async def serve(centre: Centre, args) -> None:
    loop = asyncio.get_running_loop()
    server = Server(centre, args.rate, args.resync_every)
    listener = await loop.create_server(lambda: AmiSession(server), "127.0.0.1", 0)
    stopped = loop.create_future()
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)
    pending = b""

    def readable() -> None:
        nonlocal pending
        data = os.read(fd, 4096)
        if not data:
            loop.remove_reader(fd)
            if not stopped.done():
                stopped.set_result(None)
            return
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip() == b"stats":
                sys.stdout.write(json.dumps(server.stats) + "\n")
                sys.stdout.flush()
    loop.add_reader(fd, readable)
    sys.stdout.write(json.dumps({"port": listener.sockets[0].getsockname()[1]}) + "\n")
    sys.stdout.flush()
    streaming = loop.create_task(server.run())
    await stopped
    streaming.cancel()
    listener.close()


if __name__ == "__main__":
    main()
