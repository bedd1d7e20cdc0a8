"""Queue member actions over AMI, in the field order of the capture Asterisk accepted.

transcripts/c_member_actions.ami.txt (Asterisk 22.10.1):
    QueueAdd:    Queue, Interface, MemberName, StateInterface, Penalty, Paused[, Reason]
    QueuePause:  [Queue,] Interface, Paused[, Reason]   (no Queue = every queue of the interface)
    QueueRemove: Queue, Interface
`ami.wire.Action` writes `Action:` first and `ActionID:` last and refuses CR/LF/NUL in any
value. MemberName is always the agent NUMBER, never the person's name.

Idempotence: removing a member that is not there answers `Response: Error / Message: Unable to
remove interface: Not there` (captured); adding one that is already there answers `Unable to add
interface: Already there` (app_queue.c `manager_add_queue_member`, RES_EXISTS; not captured).
Both mean the wanted end state holds, so they count as done.
"""
from __future__ import annotations

from typing import Any

from ccengine.ami.protocol import AmiActionError, AmiError

ALREADY_THERE = "already there"
NOT_THERE = "not there"


class AmiDisabled(AmiError):
    """The engine runs without AMI (ami.enabled = false or no secret): no member action."""


class MemberActions:
    def __init__(self, ami: Any):
        self.ami = ami  # ccengine.ami.client.AmiClient (send_action), or None: AMI disabled

    @property
    def available(self) -> bool:
        return self.ami is not None

    def _send(self, name: str, fields: list) -> Any:
        if self.ami is None:
            raise AmiDisabled(f"{name} not sent: AMI is disabled")
        return self.ami.send_action(name, fields)

    async def add(self, queue: str, interface: str, agent: str, penalty: int,
                  paused: bool = False, reason: str = "") -> bool:
        """Add the member; True when added, False when it already was a member."""
        fields: list[tuple[str, str | int | bool]] = [
            ("Queue", queue), ("Interface", interface), ("MemberName", agent),
            ("StateInterface", interface), ("Penalty", penalty), ("Paused", paused)]
        if paused and reason:
            fields.append(("Reason", reason))
        try:
            await self._send("QueueAdd", fields)
        except AmiActionError as exc:
            if ALREADY_THERE in str(exc).lower():
                return False
            raise
        return True

    async def pause(self, interface: str, paused: bool, reason: str = "",
                    queue: str | None = None) -> None:
        """Pause or unpause in `queue`, or in every queue of the interface when queue is None."""
        fields: list[tuple[str, str | int | bool]] = []
        if queue is not None:
            fields.append(("Queue", queue))
        fields += [("Interface", interface), ("Paused", paused)]
        if paused and reason:
            fields.append(("Reason", reason))
        await self._send("QueuePause", fields)

    async def remove(self, queue: str, interface: str) -> bool:
        """Remove the member; True when removed, False when it was not a member."""
        try:
            await self._send("QueueRemove", [("Queue", queue), ("Interface", interface)])
        except AmiActionError as exc:
            if NOT_THERE in str(exc).lower():
                return False
            raise
        return True
