"""Pure FastAGI wire code: the `agi_*` environment, the reply grammar, and safe command bytes.

No Twisted here: bytes in, values out. Ground truth is Asterisk 22.10.1 as recorded in
../shared/asterisk/transcripts2 (copies in tests/fixtures/agi/).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from types import MappingProxyType
from collections.abc import Mapping
from urllib.parse import parse_qs

__all__ = [
    "AgiEnvironment", "parse_environment", "AgiReply", "ReplyParser", "HANGUP",
    "AgiError", "AgiInvalidCommand", "AgiUsageError", "AgiDeadChannel", "AgiProtocolError",
    "UnsafeAgiText", "Word", "quote", "identifier", "digit_string", "format_command",
]


# --- environment -------------------------------------------------------------------------

@dataclass(frozen=True)
class AgiEnvironment:
    """The `agi_*` block Asterisk sends before the first command (keys lower-case, UTF-8)."""

    raw: Mapping[str, str]
    anomalies: tuple[str, ...] = ()

    def get(self, key: str, default: str = "") -> str:
        return self.raw.get(key, default)

    @property
    def network_script(self) -> str:
        return self.get("agi_network_script").split("?", 1)[0]

    @property
    def script_query(self) -> dict[str, str]:
        """`agi://host/route?x=1` gives {'x': '1'} (first value of each key)."""
        _, _, query = self.get("agi_network_script").partition("?")
        return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}

    @property
    def args(self) -> tuple[str, ...]:
        found = []
        n = 1
        while f"agi_arg_{n}" in self.raw:
            found.append(self.raw[f"agi_arg_{n}"])
            n += 1
        return tuple(found)

    @property
    def caller_number(self) -> str:
        return _known(self.get("agi_callerid"))

    @property
    def caller_name(self) -> str:
        # PJSIP keeps the backslashes of a quoted SIP display name (AGI note 9):
        # `Zhang \"San\" 张三` arrives with its backslashes; we keep the text as Asterisk has it.
        return _known(self.get("agi_calleridname"))

    @property
    def channel(self) -> str:
        return self.get("agi_channel")

    @property
    def uniqueid(self) -> str:
        return self.get("agi_uniqueid")

    @property
    def language(self) -> str:
        return self.get("agi_language")

    @property
    def dnid(self) -> str:
        return _known(self.get("agi_dnid"))

    @property
    def extension(self) -> str:
        return self.get("agi_extension")

    @property
    def context(self) -> str:
        return self.get("agi_context")


def _known(value: str) -> str:
    # Asterisk writes the literal word "unknown" for an absent caller ID / DNID / RDNIS.
    return "" if value == "unknown" else value


def parse_environment(lines: list[bytes]) -> AgiEnvironment:
    """Build the environment from its lines (without terminators, without the final blank line).

    Each line is split on the first b': '. Asterisk writes the caller ID name raw into this
    block (res_agi.c setup_env), so a name with a newline arrives as extra lines. A line that
    is not `agi_<name>: value` is harmless and skipped. A line that would *override* the
    environment is recorded in `anomalies`, and the server refuses such a session (the
    dialplan fallback queues the call): a repeated key (the first value is kept), or an
    `agi_arg_N` before `agi_threadid` (Asterisk sends the arguments last, agi3_env_args).
    """
    raw: dict[str, str] = {}
    anomalies: list[str] = []
    for line in lines:
        key, sep, value = line.partition(b": ")
        # The keys Asterisk always sends are looked up as they are; any other key takes the
        # full path (decode, strip, lower-case, pattern), which gives the same name for these.
        name = _STANDARD_KEYS.get(key)
        if name is None:
            name = key.decode("utf-8", "replace").strip().lower()
            if not _ENV_KEY_RE.fullmatch(name):
                continue
        if not sep:
            continue
        if name in raw:
            anomalies.append(f"repeated {name}")
            continue
        if name.startswith("agi_arg_") and "agi_threadid" not in raw:
            anomalies.append(f"{name} before agi_threadid")
            continue
        raw[name] = value.decode("utf-8", "replace")
    return AgiEnvironment(MappingProxyType(raw), tuple(anomalies))


_ENV_KEY_RE = re.compile(r"agi_[a-z0-9_]{1,40}")
# res_agi.c setup_env, in the order Asterisk 22 sends them (transcripts2/agi1_suite), and the
# first arguments (agi3_env_args).
_STANDARD_KEYS: dict[bytes, str] = {name.encode(): name for name in (
    "agi_network", "agi_network_script", "agi_request", "agi_channel", "agi_language",
    "agi_type", "agi_uniqueid", "agi_version", "agi_callerid", "agi_calleridname",
    "agi_callingpres", "agi_callingani2", "agi_callington", "agi_callingtns", "agi_dnid",
    "agi_rdnis", "agi_context", "agi_extension", "agi_priority", "agi_enhanced",
    "agi_accountcode", "agi_threadid", *(f"agi_arg_{n}" for n in range(1, 10)))}


# --- replies -----------------------------------------------------------------------------

class AgiError(Exception):
    """Base of every error reply or wire failure of one AGI command."""


class AgiInvalidCommand(AgiError):
    """510: Asterisk does not know the command (also any command sent with \\r\\n, AGI note 2)."""


class AgiDeadChannel(AgiError):
    """511: command not permitted on a dead channel (the caller has hung up)."""


class AgiUsageError(AgiError):
    """520: wrong syntax; `usage` holds the usage text Asterisk sent (may contain XML markup)."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage


class AgiProtocolError(AgiError):
    """A line that fits no part of the reply grammar; pairing can no longer be trusted."""


@dataclass(frozen=True)
class AgiReply:
    code: int
    result: str
    data: str | None = None
    endpos: int | None = None

    @property
    def result_int(self) -> int | None:
        try:
            return int(self.result)
        except ValueError:
            return None


class _Hangup:
    """The `HANGUP` line Asterisk sends when the caller is gone (not a reply to a command)."""

    _instance: _Hangup | None = None

    def __new__(cls) -> _Hangup:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "HANGUP"


HANGUP = _Hangup()

# `200 result=<value>[ (<data>)][ endpos=<n>]`. The data runs from the first '(' to the LAST ')'
# before the optional endpos, so parentheses and quotes inside a value survive:
# `200 result=1 ("CC Caller" <caller> on PJSIP/caller-00000000)`.
_REPLY_200 = re.compile(r"200 result=(\S*)(?: \((.*)\))?(?: endpos=(-?\d+))?")
_USAGE_END = "520 "
_MAX_USAGE_LINES = 200
_MAX_USAGE_BYTES = 16 * 1024     # Asterisk's longest usage text is a few KB (AGI note 3)
# The same few replies answer most commands (`200 result=1` every SET VARIABLE, `200 result=0
# endpos=N` a prompt played to its end). AgiReply is immutable, so such a line is parsed once
# and its reply reused: the commonest ones for every connection (a fixed set, parsed at
# import), the others per connection (at most _MAX_PLAIN_REPLIES, only short lines of exactly
# that shape: never caller text, never a long line), so whatever one peer sends cannot fill
# another connection's cache or the process's.
_MAX_PLAIN_REPLIES = 32
_COMMON_REPLIES: dict[bytes, AgiReply] = {}      # filled below, after ReplyParser
_CACHEABLE = re.compile(rb"200 result=-?\d{1,6}(?: endpos=\d{1,10})?")

class ReplyParser:
    """Feed it lines (terminator removed); it returns the items each line completes."""

    def __init__(self) -> None:
        self._usage: list[str] | None = None
        self._usage_bytes = 0
        self._plain: dict[bytes, AgiReply] = {}    # this connection's plain replies

    def feed(self, line: bytes) -> list:
        if self._usage is None:
            reply = _COMMON_REPLIES.get(line) or self._plain.get(line)
            if reply is not None:
                return [reply]
        text = line.decode("utf-8", "replace")
        if self._usage is not None:
            # Multi-line 520 (AGI note 3): usage lines carry no prefix and may hold raw XML.
            if text.startswith(_USAGE_END):
                usage, self._usage = "\n".join(self._usage), None
                return [AgiUsageError("invalid command syntax", usage)]
            self._usage_bytes += len(line)
            if len(self._usage) >= _MAX_USAGE_LINES or self._usage_bytes > _MAX_USAGE_BYTES:
                self._usage = None
                return [AgiProtocolError("520 usage text too long or without an end line")]
            self._usage.append(text)
            return []
        if text == "HANGUP":
            return [HANGUP]
        if text.startswith("520-"):
            self._usage, self._usage_bytes = [], 0
            return []
        code, _, rest = text.partition(" ")
        if code == "100":
            return []  # `100 result=0 Trying...`: the final reply follows
        if code == "200":
            match = _REPLY_200.fullmatch(text)
            if match is None:
                return [AgiProtocolError(f"malformed 200 reply: {text[:200]!r}")]
            result, data, endpos = match.groups()
            reply = AgiReply(200, result, data, int(endpos) if endpos is not None else None)
            if data is None and len(self._plain) < _MAX_PLAIN_REPLIES and \
                    _CACHEABLE.fullmatch(line):
                self._plain[line] = reply
            return [reply]
        if code == "510":
            return [AgiInvalidCommand(rest)]
        if code == "511":
            return [AgiDeadChannel(rest)]
        if code == "520":
            return [AgiUsageError(rest)]
        return [AgiProtocolError(f"unexpected line: {text[:200]!r}")]


_COMMON_REPLIES.update({
    line: ReplyParser().feed(line)[0]
    for line in (b"200 result=0", b"200 result=1", b"200 result=-1", b"200 result=0 endpos=0")})


# --- commands ----------------------------------------------------------------------------

class UnsafeAgiText(ValueError):
    """Text that cannot be written into an AGI command safely (control or separator chars)."""


# Cc: C0/C1 controls incl. \n \r \x0b \x1c NUL DEL; Cf: invisible format chars; Zl/Zp: U+2028/9;
# Cs: lone surrogates (cannot be encoded as UTF-8).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_IDENTIFIER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./()-]{0,79}")
_DIGITS = re.compile(r"[0-9*#]{1,255}")
# Last line of defence for anything written unquoted: no space, quote, backslash or control.
_WORD = re.compile(r"[A-Za-z0-9_./()*#-]{1,255}")
_VERB = re.compile(r"[A-Z]+(?: [A-Z]+)*")
_VERBS: set[str] = set()


class Word:
    """Text written unquoted (names, digit strings); validated when constructed."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not _WORD.fullmatch(text):
            raise UnsafeAgiText(f"not a safe AGI word: {text!r:.100}")
        self.text = text

    def __repr__(self) -> str:
        return f"Word({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Word) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def check_text(text: str) -> str:
    """Return `text` if it holds no character that could end or split an AGI command line."""
    if text.isascii() and text.isprintable():
        # The only unsafe ASCII characters are the controls (Cc: 0-31, 127), exactly the
        # ones isprintable() refuses; one C call instead of a category lookup per character.
        return text
    for ch in text:
        if unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            raise UnsafeAgiText(f"control character U+{ord(ch):04X} in AGI text")
    return text


def quote(text: str) -> str:
    r"""Double-quote for res_agi's argument parser: `\` -> `\\`, `"` -> `\"` (AGI note 7)."""
    check_text(text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def identifier(name: str) -> Word:
    """A variable, function, sound file or application name, e.g. `CALLERID(num)`."""
    # Names are mostly constants of the code and the prompt catalogue: each is validated once
    # (two patterns) and its immutable Word reused; the cache is bounded.
    word = _IDENTIFIERS.get(name) if type(name) is str else None
    if word is not None:
        return word
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or ".." in name:
        raise UnsafeAgiText(f"not a safe AGI identifier: {name!r:.100}")
    word = Word(name)
    if len(_IDENTIFIERS) < _MAX_IDENTIFIERS:
        _IDENTIFIERS[name] = word
    return word


_IDENTIFIERS: dict[str, Word] = {}
_MAX_IDENTIFIERS = 1024


def digit_string(digits: str) -> Word:
    """DTMF digits (`0-9`, `*`, `#`), at least one."""
    if not isinstance(digits, str) or not _DIGITS.fullmatch(digits):
        raise UnsafeAgiText(f"not a DTMF digit string: {digits!r:.100}")
    return Word(digits)


def format_command(verb: str, *args: object) -> bytes:
    """One command line: `verb` is a trusted literal such as "SET VARIABLE"; ints are written as
    numbers, `Word`s as they are, every `str` quoted. Terminated by b"\\n" only: Asterisk
    rejects b"\\r\\n" (AGI note 2)."""
    if verb not in _VERBS:
        if not isinstance(verb, str) or not _VERB.fullmatch(verb):
            raise ValueError(f"not an AGI verb: {verb!r}")
        if len(_VERBS) < 64:
            _VERBS.add(verb)    # verbs are literals of the code: a handful
    parts = [verb]
    for arg in args:
        if isinstance(arg, bool):
            raise TypeError("bool is not an AGI argument")
        if isinstance(arg, int):
            parts.append(str(arg))
        elif isinstance(arg, Word):
            parts.append(arg.text)
        elif isinstance(arg, str):
            parts.append(quote(arg))
        else:
            raise TypeError(f"unsupported AGI argument type: {type(arg).__name__}")
    return " ".join(parts).encode("utf-8") + b"\n"
