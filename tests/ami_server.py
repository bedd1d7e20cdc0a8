"""A stand-in Asterisk AMI server that answers with recorded Asterisk 22 messages.

    python tests/ami_server.py --port 0 --log actions.jsonl   (prints "listening <port>")

- On connect it sends the banner Asterisk sent in ami5_originate.
- Each action is answered with what Asterisk answered to the same action in a capture
  (ANSWERS below), the ActionID replaced by the client's; list actions (QueueStatus) get the
  whole recorded list. An action no capture covers is answered
  `Response: Error / Message: no capture for <Action>` (never invented success).
- Every action received is appended to --log as one JSON list of the fields in order, plus
  ["_connection", N] naming the connection (1, 2, ... in connection order).
- Each line on standard input is a JSON list of events ([[name, value], ...] per event, as
  recorded); they are sent to every connected client, in order.

Used by the console's browser test (tests/browser/), which runs the real engine as a process
against it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import ami_replay  # noqa: E402
from ccengine.ami.wire import Message  # noqa: E402

# action (lower case) -> (capture, which recorded action of that name: a predicate on fields)
ANSWERS = {
    "login": ("ami5_originate", lambda f: True),
    "ping": ("ami4_login_ping_events", lambda f: True),
    "queuestatus": ("d_queuestatus_idle", lambda f: True),
    "queueadd": ("c_member_actions", lambda f: True),
    "queueremove": ("c_member_actions", lambda f: True),
    "queuepause": ("c_member_actions", lambda f: f.get("paused", "").lower() == "true"),
    "originate": ("ami5_originate", lambda f: True),
    "queuewithdrawcaller": ("ami6_queue_priority_withdraw", lambda f: True),
    "userevent": ("ami4_login_ping_events", lambda f: True),
}
UNPAUSE = ("c_member_actions", lambda f: f.get("paused", "").lower() == "false")
EVENTS_ON = ("ami4_login_ping_events", lambda f: f.get("eventmask") == "on")
EVENTS_OFF = ("ami4_login_ping_events", lambda f: f.get("eventmask") == "off")


def recorded_answer(capture: str, action: str, wanted) -> list[Message]:
    """The messages Asterisk sent back for the first recorded `action` whose fields satisfy
    `wanted`: every received packet carrying that action's ActionID."""
    packets = ami_replay.read_transcript(capture)
    for index, packet in enumerate(packets):
        if packet.direction != "sent":
            continue
        fields = {k.lower(): v for k, v in packet.message.items()}
        if fields.get("action", "").lower() != action or not wanted(fields):
            continue
        action_id = fields.get("actionid")
        out = []
        for later in packets[index + 1:]:
            if later.direction != "received" or later.is_banner or later.is_close:
                continue
            message = later.message
            if message.get("ActionID") == action_id:
                out.append(message)
        return out
    raise LookupError(f"{capture}: no recorded {action}")


def banner() -> bytes:
    for packet in ami_replay.read_transcript("ami5_originate"):
        if packet.is_banner:
            return (packet.lines[0] + "\r\n").encode()
    raise LookupError("no banner")


class Server:
    def __init__(self, log: Path):
        self.log = log
        self.clients: list[asyncio.StreamWriter] = []
        self.answers = {name: recorded_answer(capture, name, wanted)
                        for name, (capture, wanted) in ANSWERS.items()}
        self.unpause = recorded_answer(UNPAUSE[0], "queuepause", UNPAUSE[1])
        self.events = {mask: recorded_answer(capture, "events", wanted)
                       for mask, (capture, wanted) in (("on", EVENTS_ON), ("off", EVENTS_OFF))}
        self.connections = 0

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        writer.write(banner())
        self.clients.append(writer)
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                pairs = []
                for line in block.decode("utf-8", "replace").split("\r\n"):
                    if ":" in line:
                        key, value = line.split(":", 1)
                        pairs.append([key.strip(), value.strip()])
                with self.log.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(pairs + [["_connection", str(number)]],
                                         ensure_ascii=False) + "\n")
                writer.write(self.answer(pairs))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if writer in self.clients:
                self.clients.remove(writer)
            writer.close()

    def answer(self, pairs: list[list[str]]) -> bytes:
        fields = {k.lower(): v for k, v in pairs}
        action, action_id = fields.get("action", "").lower(), fields.get("actionid", "")
        recorded = self.answers.get(action)
        if action == "queuepause" and fields.get("paused", "").lower() == "false":
            recorded = self.unpause
        if action == "events":
            recorded = self.events.get(fields.get("eventmask", "").lower())
        if recorded is None:
            return Message([("Response", "Error"), ("ActionID", action_id),
                            ("Message", f"no capture for {fields.get('action', '')}")]).to_bytes()
        return b"".join(ami_replay.retag(m, action_id).to_bytes() for m in recorded)

    async def control(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            for event in json.loads(line):
                data = Message([tuple(pair) for pair in event]).to_bytes()
                for writer in list(self.clients):
                    writer.write(data)
            for writer in list(self.clients):
                await writer.drain()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    server = Server(args.log)
    listener = await asyncio.start_server(server.client, "127.0.0.1", args.port)
    port = listener.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    async with listener:
        await server.control()


if __name__ == "__main__":
    asyncio.run(main())
