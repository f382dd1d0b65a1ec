"""Framers: where the messages of a byte stream begin and end, so faults can strike by message.

A framer is one function (or a small callable class): given the bytes of one
message so far, from its first byte, it returns the message's whole length
once it can tell (it may be more than it was given), or ``None`` while it
cannot yet. The built-in ones:

- ``"lines"``: a message ends with LF (so CRLF too);
- ``"length-prefix"``: a big-endian 4-byte length, then that many bytes;
  ``"length-prefix:2"``, ``"length-prefix:8:little"``,
  ``"length-prefix:4:big:inclusive"`` (the length counts the header too), or
  :class:`LengthPrefix` in Python;
- ``"http"``: HTTP/1.1 requests and responses: the head, then a body by
  ``Content-Length`` or ``chunked`` (a response with neither ends with the
  connection), keep-alive included;
- ``"tls-records"``: TLS records (a 5-byte header, its length in bytes 3-4).

Anything else given as text is ``"package.module:function"``, imported.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sockharness._core import UsageError

__all__ = [
    "FRAMERS",
    "Framer",
    "FramerLike",
    "Framing",
    "LengthPrefix",
    "framer_name",
    "http",
    "lines",
    "resolve_framer",
    "tls_records",
]

#: A framer: the bytes of a message so far -> its whole length, or ``None`` while unknown.
Framer = Callable[[bytes], "int | None"]
#: What a fault's ``framer=`` takes: a built-in's name, ``"module:function"``, or a framer.
FramerLike = str | Callable[[bytes], Any]


def lines(message: bytes) -> int | None:
    """A line ends with LF (CRLF ends with it too)."""
    end = message.find(b"\n")
    return None if end < 0 else end + 1


def tls_records(message: bytes) -> int | None:
    """A TLS record: type, version (2 bytes), length (2 bytes, big-endian), then the body."""
    if len(message) < 5:
        return None
    return 5 + int.from_bytes(message[3:5], "big")


@dataclass(frozen=True)
class LengthPrefix:
    """Messages that start with their length: ``size`` bytes (1, 2, 4 or 8), in ``byteorder``.

    ``includes_header``: the length counts the header's own bytes too.
    """

    size: int = 4
    byteorder: Literal["big", "little"] = "big"
    includes_header: bool = False

    def __post_init__(self) -> None:
        if self.size not in (1, 2, 4, 8):
            raise UsageError(
                f"LengthPrefix(size={self.size!r}): the length takes 1, 2, 4 or 8 bytes",
                parameter="size",
                value=self.size,
            )
        if self.byteorder not in ("big", "little"):
            raise UsageError(
                f"LengthPrefix(byteorder={self.byteorder!r}): use 'big' or 'little'",
                parameter="byteorder",
                value=self.byteorder,
            )

    def __call__(self, message: bytes) -> int | None:
        if len(message) < self.size:
            return None
        length = int.from_bytes(message[: self.size], self.byteorder)
        return max(length, self.size) if self.includes_header else self.size + length

    def __str__(self) -> str:
        text = f"length-prefix:{self.size}:{self.byteorder}"
        return text + (":inclusive" if self.includes_header else "")


_HEAD_END = re.compile(rb"\r?\n\r?\n")
_NO_BODY_STATUS = re.compile(rb"^HTTP/\d\.\d (1\d\d|204|304)\b")


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\n")[1:]:
        key, colon, value = line.partition(b":")
        if colon and key.strip().lower() == name:
            return value.strip()
    return None


def _chunked_end(message: bytes, start: int) -> int | None:
    """Where a chunked body that starts at ``start`` ends, trailers included (``None``: later)."""
    position = start
    while True:
        line_end = message.find(b"\n", position)
        if line_end < 0:
            return None
        size_text = message[position:line_end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return line_end + 1  # Not chunked after all: end the message here.
        position = line_end + 1
        if size == 0:
            # Trailers, then an empty line.
            while True:
                line_end = message.find(b"\n", position)
                if line_end < 0:
                    return None
                if message[position:line_end].strip() == b"":
                    return line_end + 1
                position = line_end + 1
        position += size
        line_end = message.find(b"\n", position)  # The CRLF after the chunk's data.
        if line_end < 0:
            return None
        position = line_end + 1


def http(message: bytes) -> int | None:
    """An HTTP/1.x request or response: the head, then its body (Content-Length or chunked)."""
    match = _HEAD_END.search(message)
    if match is None:
        return None
    head, body_start = message[: match.start()], match.end()
    response = message.startswith(b"HTTP/")
    if response and _NO_BODY_STATUS.match(head):
        return body_start
    encoding = _header(head, b"transfer-encoding")
    if encoding is not None and b"chunked" in encoding.lower():
        return _chunked_end(message, body_start)
    length = _header(head, b"content-length")
    if length is not None and length.isdigit():
        return body_start + int(length)
    if response:
        return None  # No length: the body runs until the connection ends.
    return body_start  # A request with neither has no body.


#: The built-in framers by name.
FRAMERS: dict[str, Callable[[bytes], int | None]] = {
    "lines": lines,
    "length-prefix": LengthPrefix(),
    "http": http,
    "tls-records": tls_records,
}


def _length_prefix(text: str) -> LengthPrefix:
    _, *options = text.split(":")
    size, byteorder, includes = 4, "big", False
    try:
        if options:
            size = int(options[0])
        for option in options[1:]:
            if option in ("big", "little"):
                byteorder = option
            elif option == "inclusive":
                includes = True
            else:
                raise ValueError(option)
    except ValueError:
        raise UsageError(
            f"framer={text!r}: write length-prefix[:SIZE[:big|little][:inclusive]], "
            f"e.g. 'length-prefix:2:little'",
            parameter="framer",
            value=text,
        ) from None
    return LengthPrefix(size, byteorder, includes)  # type: ignore[arg-type]


def resolve_framer(value: Any) -> Callable[[bytes], Any]:
    """The framer ``value`` names (or is); a clear error for a name that is none."""
    if callable(value):
        return value
    if not isinstance(value, str):
        raise UsageError(
            f"framer={value!r} is not a framer: give a name ({', '.join(FRAMERS)}), "
            f"'package.module:function', or a function",
            parameter="framer",
            value=value,
        )
    name = value.strip().lower().replace("_", "-")
    if name in FRAMERS:
        return FRAMERS[name]
    if name.startswith("length-prefix:"):
        return _length_prefix(name)
    module_name, colon, attribute = value.strip().partition(":")
    if not colon or not module_name or not attribute:
        raise UsageError(
            f"framer={value!r} is not a framer: the built-in ones are "
            f"{', '.join(FRAMERS)}; your own is 'package.module:function'",
            parameter="framer",
            value=value,
        )
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except Exception as exc:  # Any failure to import it is the user's to fix.
        raise UsageError(
            f"framer={value!r} could not be imported: {type(exc).__name__}: {exc}",
            parameter="framer",
            value=value,
        ) from None
    if not callable(found):
        raise UsageError(
            f"framer={value!r} is not callable: a framer takes the bytes of a message so far "
            f"and returns its length or None",
            parameter="framer",
            value=value,
        )
    return found


def framer_name(value: Any) -> str:
    """How a framer is written in files and reprs: its name, or ``module:function``."""
    if isinstance(value, str):
        return value
    for name, builtin in FRAMERS.items():
        if builtin is value:
            return name
    if isinstance(value, LengthPrefix):
        return str(value)
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if module and qualname and "<" not in qualname:
        return f"{module}:{qualname}"
    return repr(value)


class Framing:
    """One direction's stream, cut into messages by a framer, as it passes."""

    def __init__(self, framer: Callable[[bytes], Any]) -> None:
        self.framer = framer
        self.index = 0  # The message the next byte belongs to.
        self._head = bytearray()  # The current message while its length is unknown.
        self._length: int | None = None
        self._position = 0  # Bytes of the current message passed so far.
        #: Why framing stopped (the framer raised or answered nonsense), if it did.
        self.failed: str | None = None

    def split(self, data: bytes) -> list[tuple[int, bytes]]:
        """``data`` as ``(message index, piece)`` pairs, in order."""
        out: list[tuple[int, bytes]] = []
        view = memoryview(data)
        while view:
            if self.failed is not None:
                out.append((self.index, bytes(view)))
                break
            if self._length is None:
                self._head += view
                self._length = self._measure()
                if self._length is None:
                    self._position += len(view)
                    out.append((self.index, bytes(view)))
                    break
            need = max(0, self._length - self._position)
            piece = view[:need]
            if piece:
                out.append((self.index, bytes(piece)))
            self._position += len(piece)
            view = view[need:]
            if self._position >= self._length:
                self.index += 1
                self._position = 0
                self._length = None
                self._head.clear()
        return out

    def _measure(self) -> int | None:
        try:
            length = self.framer(bytes(self._head))
        except Exception as exc:  # A user's framer: report it, never break the relay.
            self.failed = f"the framer raised {type(exc).__name__}: {exc}"
            return None
        if length is None:
            return None
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            self.failed = f"the framer returned {length!r}, not a length of at least 1 byte"
            return None
        return max(length, self._position)
