"""Test rig for the agents feature: a real AmiClient whose Asterisk side answers queue member
actions with the RECORDED responses of transcripts/c_member_actions.ami.txt (ActionID retagged),
followed by that capture's QueueMemberAdded / QueueMemberPause / QueueMemberRemoved events with
the member's fields substituted, and QueueStatus with recorded QueueMember items (transcripts2/ami9_pause_rna_incall) whose
queue/member fields are substituted from a member table that QueueAdd/QueueRemove/QueuePause
keep up to date, so a second resync sees what the first one did. Plus a keypad for AGI
digit entry (reply formats of agi1_dtmf) and the wiring of the feature on a task.Clock.
"""
from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

import ami_replay
from agi_harness import ScriptedAsterisk, agi_factory, digit_code_reply
from ccengine.agents import feature as agents_feature
from ccengine.ami.wire import Message
from ccengine.config import load_config
from ccengine.feature import EngineContext
from ccengine.prompts.catalogue import load_catalogue
from ccengine.prompts.metrics import PromptMetrics
from ccengine.prompts.player import Prompter
from ccengine.queues.feed import QueueFeed
from ccengine.queues.picture import QueuePicture
from ccengine.store.base import RedisConnection

_RESPONSES = {m["Message"]: m for m in ami_replay.received_messages("c_member_actions")
              if m.response}
_STATUS = [m for m in ami_replay.received_messages("ami9_pause_rna_incall", "c1")
           if m.action_id == "c1-3"]          # response, QueueParams, 3 x QueueMember, Complete
_MEMBER_TEMPLATE = _STATUS[4]                 # Agent 1003, paused, reason lunch
_EVENTS = {m.event: m for m in reversed(ami_replay.events("c_member_actions", "QueueMemberAdded",
                                                          "QueueMemberPause", "QueueMemberRemoved"))}


def normalise(data: bytes) -> bytes:
    return re.sub(rb"ActionID: [^\r]*", b"ActionID: *", data)


def substitute(message: Message, **values: str) -> Message:
    """A recorded message with some header values replaced (names keep their order)."""
    return Message([(k, values.get(k, v)) for k, v in message.items()])


class FakeQueues:
    """Asterisk's answers to queue member actions, from the recorded responses."""

    def __init__(self, harness: ami_replay.ClientHarness):
        self.harness = harness
        self.members: dict[tuple[str, str], dict[str, str]] = {}
        self.actions: list[bytes] = []
        self.fail_with: str | None = None
        transport = harness.transport
        original = transport.write

        def write(data: bytes) -> None:
            original(data)
            for block in data.split(b"\r\n\r\n"):
                if block.strip():
                    self._action(Message.parse(block), block + b"\r\n\r\n")
        transport.write = write

    def _action(self, action: Message, raw: bytes) -> None:
        name = action.get("Action")
        if name not in ("QueueAdd", "QueuePause", "QueueRemove", "QueueStatus"):
            return
        self.actions.append(raw)
        reply = self._answer(name, action)
        self.harness.receive([ami_replay.retag(m, action.action_id) for m in reply])

    def _answer(self, name: str, a: Message) -> list[Message]:
        key = (a.get("Queue"), a.get("Interface"))
        if self.fail_with:
            return [substitute(_RESPONSES["Unable to remove interface: Not there"],
                               Message=self.fail_with)]
        if name == "QueueAdd":
            paused = a.get("Paused") == "true"
            self.members[key] = {"Name": a["MemberName"], "Paused": "1" if paused else "0",
                                 "PausedReason": a.get("Reason", "") if paused else "",
                                 "Penalty": a.get("Penalty", "0")}
            return [_RESPONSES["Added interface to queue"], self._event("QueueMemberAdded", key)]
        if name == "QueueRemove":
            if key not in self.members:
                return [_RESPONSES["Unable to remove interface: Not there"]]
            removed = self._event("QueueMemberRemoved", key)
            del self.members[key]
            return [_RESPONSES["Removed interface from queue"], removed]
        if name == "QueuePause":
            paused = a.get("Paused") == "true"
            events = []
            for (queue, interface), m in sorted(self.members.items()):
                if interface == a["Interface"] and a.get("Queue") in (None, queue):
                    m["Paused"], m["PausedReason"] = ("1", a.get("Reason", "")) if paused else ("0", "")
                    events.append(self._event("QueueMemberPause", (queue, interface)))
            return [_RESPONSES["Interface paused successfully" if paused
                               else "Interface unpaused successfully"], *events]
        items = [substitute(_MEMBER_TEMPLATE, Queue=q, Location=i, StateInterface=i,
                            Membership="dynamic", Status="1", Name=m["Name"], Paused=m["Paused"],
                            PausedReason=m["PausedReason"], Penalty=m["Penalty"])
                 for (q, i), m in sorted(self.members.items())]
        complete = substitute(_STATUS[-1], ListItems=str(len(items)))
        return [_STATUS[0], *items, complete]

    def _event(self, name: str, key: tuple[str, str]) -> Message:
        m = self.members[key]
        return substitute(_EVENTS[name], Queue=key[0], Interface=key[1], StateInterface=key[1],
                          MemberName=m["Name"], Paused=m["Paused"],
                          PausedReason=m["PausedReason"], Penalty=m["Penalty"])

    def written(self) -> list[bytes]:
        return [normalise(a) for a in self.actions]


class Keypad:
    """Digits the agent types after a prompt: `{prompt stem: digits}`; '#' ends each entry."""

    def __init__(self, entries: dict[str, str]):
        self.entries = dict(entries)
        self.pending = ""
        self.played: list[str] = []

    def answer(self, command: bytes) -> bytes | None:
        if command.startswith(b"STREAM FILE "):
            path = command.split(b" ")[2].decode()
            self.played.append(path)
            stem = path.rsplit("/", 1)[-1]
            if stem in self.entries:
                self.pending = self.entries.pop(stem) + "#"
                return self._next(endpos=True)
        if command.startswith(b"WAIT FOR DIGIT"):
            return self._next()
        return None

    def _next(self, endpos: bool = False) -> bytes:
        if not self.pending:
            return b"200 result=0\n"
        digit, self.pending = self.pending[0], self.pending[1:]
        return digit_code_reply(digit, 1200 if endpos else None)

    def heard(self) -> list[str]:
        """Prompt stems played, without language and numbers (`agent_login_ok-1` -> its name)."""
        return [p.split("/ccengine/", 1)[-1] for p in self.played]


class AgentsLab:
    """The agents feature wired on a task.Clock, a real Redis and the fake queues."""

    def __init__(self, redis_url: str, config=None, now: float = 0.0):
        self.config = config or load_config(None)
        self.registry = CollectorRegistry()
        self.conn = RedisConnection(redis_url)
        self.harness = ami_replay.ClientHarness()
        self.harness.login()
        self.queues = FakeQueues(self.harness)
        self.clock = self.harness.clock
        self.clock.advance(now)
        catalogue = load_catalogue(self.config.prompts, company=self.config.company.name,
                                   languages=self.config.company.languages,
                                   default_language=self.config.company.default_language)
        self.ctx = EngineContext(config=self.config, clock=self.clock, registry=self.registry,
                                 redis=self.conn, ami=self.harness.client,
                                 prompter=Prompter(catalogue, PromptMetrics(self.registry)),
                                 queues=QueueFeed(self.harness.client, QueuePicture(self.clock)))
        self.feature = agents_feature.build(self.ctx)
        self.factory, _, _ = agi_factory(self.feature.routes, clock=self.clock,
                                         registry=CollectorRegistry())

    async def dial(self, script: str, phone: str = "1003", args: tuple = (),
                   keys: dict[str, str] | None = None, channel: str | None = None):
        """One feature code from a phone; returns (ScriptedAsterisk, Keypad) once it ended."""
        keypad = Keypad(keys or {})
        asterisk = ScriptedAsterisk(self.factory, answer=keypad.answer)
        asterisk.dial(script, channel=channel or f"PJSIP/{phone}-0000000a",
                      args=args or (phone,), language="en")
        await asterisk.finished
        await self.feature.events.drained()
        return asterisk, keypad

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    async def close(self) -> None:
        await self.conn.close()
