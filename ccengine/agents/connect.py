"""On connect: the caller hears the agent's number, the agent hears how long the caller waited.

Mechanism (docs/agents.md has the dialplan): app_queue runs, once a member answered and before
the bridge, the Queue() `gosub` argument on the MEMBER's channel (docs.asterisk.org, Dialplan
Applications > Queue, and Configuration > Pre-Bridge Handlers) and the Queue() `AGI` argument
on the CALLER's channel ("executed on the calling party's channel once they are connected to a
queue member"). Neither is covered by a capture yet: verify on the lab before relying on it.

- agi://engine/agent-announce (caller channel): reads MEMBERNAME (set by `setinterfacevar =
  yes`; it is the agent NUMBER because QueueAdd uses the number as MemberName), CCENGINE_QUEUE
  and CC_LANGUAGE; plays `agent_number` when the queue announces agent numbers.
- agi://engine/agent-whisper,<queue>,<since epoch>,<now epoch> (agent channel): the caller's
  first queue entry time reaches the agent channel through variable inheritance (`__CC_WAIT_SINCE`
  set on the caller, copied by app_queue to the channels it creates), and `${EPOCH}` is read in
  the subroutine, so both times are Asterisk's clock. Plays `agent_whisper` when the wait
  exceeded the queue's `service_level_seconds`.
"""
from __future__ import annotations

import re
from typing import Any
from collections.abc import Mapping

from twisted.logger import Logger

from ccengine.config import AgentsConfig, QueueConfig
from ccengine.agents.login import FeatureRoute

log = Logger()
_DIGITS = re.compile(r"^[0-9]{1,12}$")


class ConnectAnnouncements:
    def __init__(self, settings: AgentsConfig, queues: Mapping[str, QueueConfig], directory: Any,
                 prompter: Any, phone_of: Any):
        self.settings = settings
        self.queues = queues
        self.directory = directory
        self.prompter = prompter
        self.phone_of = phone_of       # FeatureCodes.phone_of

    def routes(self) -> dict[str, Any]:
        return {"agent-announce": FeatureRoute(self.announce), "agent-whisper": FeatureRoute(self.whisper)}

    def announces(self, queue: str) -> bool:
        return self.settings.announce_agent_number and queue in self.queues and (
            not self.settings.announce_queues or queue in self.settings.announce_queues)

    async def announce(self, channel: Any) -> None:
        queue = await channel.get_variable("CCENGINE_QUEUE") or ""
        agent = await channel.get_variable("MEMBERNAME") or ""
        if not self.announces(queue) or not _DIGITS.fullmatch(agent):
            return
        lang = self.prompter.language(await channel.get_variable("CC_LANGUAGE"))
        await self.prompter.play(channel, "agent_number", lang, agent=agent)

    async def whisper(self, channel: Any) -> None:
        args = channel.env.args
        if not self.settings.whisper_wait or len(args) < 3:
            return
        queue, since, now = args[0], args[1], args[2]
        config = self.queues.get(queue)
        if config is None or not _DIGITS.fullmatch(since) or not _DIGITS.fullmatch(now):
            return
        waited = int(now) - int(since)
        if waited <= config.service_level_seconds or waited > 86400:
            return
        lang = self.prompter.default_language
        phone = self.phone_of(channel, check_arg=False)
        session = await self.directory.session_on_phone(phone) if phone else None
        if session is not None:
            record = await self.directory.get(session.number)
            if record is not None and record.languages:
                lang = self.prompter.language(record.languages[0])
        await self.prompter.play(channel, "agent_whisper", lang, seconds=waited)

