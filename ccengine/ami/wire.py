"""AMI wire format, pure: bytes in, messages out; actions out as bytes. No Twisted here.

Asterisk 22 frames every AMI packet as `Name: value\\r\\n` lines ended by an empty line
(`\\r\\n\\r\\n`), after a one-line banner `Asterisk Call Manager/11.0.0\\r\\n` that has no blank
line after it (transcripts2 AMI note 1; the banner and the first response may share a read).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
from operator import itemgetter

MAX_BLOCK_SIZE = 1024 * 1024
BLOCK_END = b"\r\n\r\n"

FieldValue = str | int | bool
Fields = Mapping[str, FieldValue] | Iterable[tuple[str, FieldValue]]


_NAME = itemgetter(0)
_VALUE = itemgetter(1)


class UnsafeAmiValue(ValueError):
    """An action name or field would break AMI framing (CR, LF or NUL, or a bad header name)."""


class AmiFrameTooLarge(ValueError):
    """More than MAX_BLOCK_SIZE bytes arrived without a block terminator."""


class Message:
    """One AMI packet (response or event): headers with case-insensitive names.

    `msg["Queue"]` / `msg.get("queue")` give the first value of a header; `getall("Output")`
    gives every value of a repeated header (Command output, Originate `Variable:`), in order.
    Lines without a colon are kept in `malformed` rather than raising.
    """

    # `server`: the name of the Asterisk server it came from (AmiClient.dispatch; the queue
    # feed for a list action's answer); "" until then.
    __slots__ = ("_headers", "_first", "malformed", "server")

    def __init__(self, headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                 malformed: Iterable[str] = ()):
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        self._headers: list[tuple[str, str]] = [(str(k), str(v)) for k, v in pairs]
        self._first = _first_values(self._headers)
        self.malformed: list[str] = list(malformed)
        self.server = ""

    @classmethod
    def parse(cls, block: bytes) -> Message:
        """Parse one block (without its terminating blank line)."""
        # Decoded once per block (a UTF-8 error never spans a LF, so this equals decoding line by
        # line). Lines end at LF with one trailing CR dropped: handles CRLF and bare LF, and keeps
        # a stray CR inside a value (Asterisk echoes `Command: NOOP\r` from a CRLF AGI probe, AGI
        # note 2). Replacing CRLF by LF drops exactly that CR from every line but the last.
        text = block.decode("utf-8", errors="replace")
        if "\r" in text:
            text = text.replace("\r\n", "\n")
            if text.endswith("\r"):
                text = text[:-1]
        lines = text.split("\n")
        # Fast path, one comprehension: every line is `Name: value` with a colon-free name
        # without surrounding blanks, which is what Asterisk sends (partitioning at ": " then
        # gives the same name and value as at the first ":" minus the one framing space).
        # Anything else (empty, blank-named, colon-less or `Name:value` lines) takes the
        # line-by-line path.
        headers = [(name, value) for name, sep, value in map(str.partition, lines, repeat(": "))
                   if sep and ":" not in name and name == name.strip() and name]
        if len(headers) == len(lines):
            malformed: list[str] = []
        else:
            headers, malformed = _parse_lines(lines)
        # The header storage is filled here directly: __init__ would copy every pair again.
        message = cls.__new__(cls)
        message._headers = headers
        message._first = _first_values(headers)
        message.malformed = malformed
        message.server = ""
        return message

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    def getall(self, name: str) -> list[str]:
        key = name.lower()
        return [value for header, value in self._headers if header.lower() == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(name for name, _ in self._headers)

    def __len__(self) -> int:
        return len(self._headers)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self._headers == other._headers and self.malformed == other.malformed

    __hash__ = None  # type: ignore[assignment]

    def items(self) -> list[tuple[str, str]]:
        return list(self._headers)

    @property
    def event(self) -> str | None:
        return self._first.get("event")   # read several times per event: no .lower()

    @property
    def response(self) -> str | None:
        return self._first.get("response")   # read several times per event: no .lower()

    @property
    def action_id(self) -> str | None:
        return self._first.get("actionid")   # read several times per event: no .lower()

    def to_bytes(self) -> bytes:
        """The packet as Asterisk would send it (used to replay captures and in tests)."""
        return b"".join(f"{k}: {v}\r\n".encode() for k, v in self._headers) + b"\r\n"

    def __repr__(self) -> str:
        kind = next((f"{k}={self.get(k)}" for k in ("Event", "Response", "Action") if k in self),
                    "untyped")
        return f"<Message {kind} ActionID={self.action_id} {len(self._headers)} headers>"


_EVENT_PREFIX = b"Event: "
# A block in which every line is `Name: value` (or `Name:value`) whose name starts with an ASCII
# letter or digit: Message.parse finds no malformed line in it (those are empty, colon-less or
# blank-named lines, which this pattern refuses).
_PLAIN_BLOCK = re.compile(rb"[A-Za-z0-9][^:\n]*:[^\n]*(?:\n[A-Za-z0-9][^:\n]*:[^\n]*)*")


def peek_event(block: bytes) -> str | None:
    """The event name of a block whose first line is `Event: <name>`, without parsing it: the
    `.event` Message.parse would give (decoded, one trailing CR dropped); None otherwise.

    Most of the AMI stream is events nobody subscribes to (Newexten, DeviceStateChange, ...):
    building a Message only to drop it was most of their cost."""
    if not block.startswith(_EVENT_PREFIX):
        return None
    end = block.find(b"\n")
    name = block[len(_EVENT_PREFIX):end] if end >= 0 else block[len(_EVENT_PREFIX):]
    return name.removesuffix(b"\r").decode("utf-8", errors="replace")


# A line whose name starts with "variable" (any case): the candidates for Message's first
# `Variable` header in a plain block (whose names start with a letter or digit).
_VARIABLE = re.compile(rb"(?:^|\n)(variable[^:\n]*):( ?)([^\n]*)", re.IGNORECASE)


def peek_variable(block: bytes) -> str | None:
    """For a plain block (is_plain_block), the value of its first `Variable` header without
    parsing it: what Message.parse(block).get("Variable") gives. None when the block has no
    such header, or when a name that only strips to `Variable` ("Variable :") comes first:
    the caller then parses.

    Half of a real AMI stream is VarSet (transcripts3 load_2cps_ami: 18,783 of 37,806 events,
    67 variables) and the engine reads two of its variables: the others need no Message."""
    for found in _VARIABLE.finditer(block):
        name = found[1]
        if len(name) == 8:          # exactly "variable", in any case
            # parse() drops one framing space and one CR before the LF; so does this.
            return found[3].removesuffix(b"\r").decode("utf-8", errors="replace")
        if name.rstrip(b" \t\r\x0b\x0c\x1c\x1d\x1e\x1f") != name or not name.isascii():
            return None             # might strip to "Variable": parse to be sure
    return None


def is_plain_block(block: bytes) -> bool:
    """True when Message.parse would find no malformed line in `block` (a block may be dropped
    unparsed only then: a malformed line is always reported)."""
    return _PLAIN_BLOCK.fullmatch(block) is not None


def _first_values(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Lower-case name -> first value (later repeats are only in `getall`)."""
    backwards = headers[::-1]
    return dict(zip(map(str.lower, map(_NAME, backwards)), map(_VALUE, backwards)))


def _parse_lines(lines: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Line by line, for blocks with empty, blank-named or colon-less lines."""
    headers: list[tuple[str, str]] = []
    malformed: list[str] = []
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name:
            malformed.append(line)
            continue
        headers.append((name, value[1:] if value[:1] == " " else value))
    return headers, malformed


class BlockSplitter:
    """Splits a byte stream into AMI blocks, one `split` per read (no per-line buffering).

    The first line of a stream is the banner when it has no colon; it is exposed as `banner`
    and never returned as a block.
    """

    def __init__(self, max_block_size: int = MAX_BLOCK_SIZE):
        self.max_block_size = max_block_size
        self.banner: str | None = None
        self._expect_banner = True
        self._rest = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._rest + data if self._rest else data
        if self._expect_banner:
            eol = buffer.find(b"\n")
            if eol < 0:
                self._rest = buffer
                self._check_size()
                return []
            self._expect_banner = False
            first = buffer[:eol].removesuffix(b"\r")
            if b":" not in first:
                self.banner = first.decode("utf-8", errors="replace")
                buffer = buffer[eol + 1:]
        blocks = buffer.split(BLOCK_END)
        self._rest = blocks.pop()
        self._check_size()
        return [block for block in blocks if block.strip(b"\r\n")]

    def _check_size(self) -> None:
        if len(self._rest) > self.max_block_size:
            size = len(self._rest)
            self._rest = b""
            raise AmiFrameTooLarge(f"AMI block larger than {self.max_block_size} bytes ({size})")

    @property
    def pending_bytes(self) -> int:
        return len(self._rest)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or any(
            c in name for c in ":\r\n\x00") or name != name.strip():
        raise UnsafeAmiValue(f"invalid AMI header name {name!r}")
    return name


def _check_value(name: str, value: FieldValue) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, str)):
        text = str(value)
    else:
        raise TypeError(f"AMI field {name} must be str, int or bool, not {type(value).__name__}")
    if "\r" in text or "\n" in text or "\x00" in text:
        # A CR/LF in a value would end the header, or the whole action, and let the value's
        # author write a second action (e.g. a caller name carrying `\r\n\r\nAction: Originate`).
        raise UnsafeAmiValue(f"AMI field {name} contains CR, LF or NUL")
    return text


class Action:
    """An AMI action. Serialised as `Action: Name`, the fields in the given order, `ActionID`
    last (the layout of the lab client in c_member_actions.ami.txt, which Asterisk accepted),
    then the blank line. Fields may repeat when given as a list of pairs (`Variable:`).
    Validation happens here, before any byte can be written."""

    __slots__ = ("name", "fields", "action_id")

    def __init__(self, name: str, fields: Fields = (), action_id: str | None = None):
        self.name = _check_value("Action", _check_name(name))
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        checked = []
        for key, value in pairs:
            _check_name(key)
            if key.lower() in ("action", "actionid"):
                raise UnsafeAmiValue(f"field {key} is set by Action itself")
            checked.append((key, _check_value(key, value)))
        self.fields: tuple[tuple[str, str], ...] = tuple(checked)
        self.action_id = None if action_id is None else _check_value("ActionID", action_id)

    def with_action_id(self, action_id: str) -> Action:
        return Action(self.name, self.fields, action_id)

    def to_bytes(self) -> bytes:
        lines = [f"Action: {self.name}"]
        lines.extend(f"{key}: {value}" for key, value in self.fields)
        if self.action_id is not None:
            lines.append(f"ActionID: {self.action_id}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={'********' if k.lower() == 'secret' else v}"
                          for k, v in self.fields)
        return f"<Action {self.name} ActionID={self.action_id} {shown}>"
