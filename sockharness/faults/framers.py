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

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sockharness._core import UsageError, import_object

__all__ = [
    "FRAMERS",
    "MAX_HEAD",
    "MAX_HTTP_HEAD",
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

    def scanner(self) -> Any:
        """An incremental scanner of these messages (see :class:`Framing`)."""

        def body(header: bytes) -> int:
            length = int.from_bytes(header, self.byteorder)
            return max(length, self.size) - self.size if self.includes_header else length

        return _CountScanner(self.size, body)


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


# -- incremental scanners: the built-in framers in linear time ---------------------------------
#
# A framer function sees a message's bytes from its start each time more come,
# which is quadratic on a long message. The built-in framers also offer a
# ``scanner()``: an object whose ``feed(data)`` says how many bytes of ``data``
# finish the current message (``None``: all of them belong to it), looking at
# each byte once. Framing uses it when a framer has one.


class _LineScanner:
    def feed(self, data: bytes) -> int | None:
        end = data.find(b"\n")
        return None if end < 0 else end + 1


class _CountScanner:
    """A header of ``size`` bytes that gives the length, then that many bytes."""

    def __init__(self, size: int, length_of: Callable[[bytes], int]) -> None:
        self._size = size
        self._length_of = length_of
        self._header = b""
        self._left: int | None = None

    def feed(self, data: bytes) -> int | None:
        used = 0
        if self._left is None:
            need = self._size - len(self._header)
            self._header += data[:need]
            used = min(need, len(data))
            if len(self._header) < self._size:
                return None
            self._left = self._length_of(self._header)
        if len(data) - used < self._left:
            self._left -= len(data) - used
            return None
        return used + self._left


#: Longest HTTP head (start line and headers) the http framer reads before it gives up.
MAX_HTTP_HEAD = 1 << 16


class _HTTPScanner:
    """HTTP/1.x, one message: the head, then the body its headers say, in linear time."""

    def __init__(self) -> None:
        self._phase = "head"
        self._line = bytearray()  # The head so far, or the chunk-size / trailer line.
        self._line_start = 0  # Where the head's current line starts in ``_line``.
        self._left = 0

    def feed(self, data: bytes) -> int | None:
        position = 0
        while position < len(data):
            if self._phase in ("body", "chunk"):
                take = min(self._left, len(data) - position)
                self._left -= take
                position += take
                if self._left == 0:
                    if self._phase == "body":
                        return position
                    self._phase = "crlf"
                continue
            if self._phase == "until close":
                return None  # The rest of the connection.
            end = data.find(b"\n", position)
            if end < 0:
                self._line += data[position:]
                if self._phase == "head" and len(self._line) > MAX_HTTP_HEAD:
                    raise ValueError(f"no end of an HTTP head within {MAX_HTTP_HEAD} bytes")
                return None
            self._line += data[position : end + 1]
            position = end + 1
            if self._line_done():
                return position
        return None

    def _line_done(self) -> bool:
        """A line was read whole: move on; whether the message ended with it."""
        line = bytes(self._line[self._line_start :])
        if self._phase == "head":
            if line.strip() or self._line_start == 0:
                # A header line (or the start line, or a stray empty line before it).
                self._line_start = len(self._line) if line.strip() else 0
                if not line.strip():
                    self._line.clear()
                return False
            head = bytes(self._line)
            self._line.clear()
            self._line_start = 0
            return self._body(head)
        self._line.clear()
        if self._phase == "size":
            return self._chunk_size(line)
        if self._phase == "crlf":
            self._phase = "size"
            return False
        return not line.strip()  # "trailer": an empty line ends the message.

    def _chunk_size(self, line: bytes) -> bool:
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            return True  # Not chunked after all: end the message here.
        if size == 0:
            self._phase = "trailer"
        else:
            self._phase, self._left = "chunk", size
        return False

    def _body(self, head: bytes) -> bool:
        response = head.startswith(b"HTTP/")
        if response and _NO_BODY_STATUS.match(head):
            return True
        encoding = _header(head, b"transfer-encoding")
        if encoding is not None and b"chunked" in encoding.lower():
            self._phase = "size"
            return False
        length = _header(head, b"content-length")
        if length is not None and length.isdigit():
            if int(length) == 0:
                return True
            self._phase, self._left = "body", int(length)
            return False
        if response:
            self._phase = "until close"
            return False
        return True  # A request with neither has no body.


def _tls_scanner() -> _CountScanner:
    return _CountScanner(5, lambda header: int.from_bytes(header[3:5], "big"))


def _with_scanner(framer: Callable[[bytes], int | None], scanner: Callable[[], Any]) -> None:
    framer.scanner = scanner  # type: ignore[attr-defined]


_with_scanner(lines, _LineScanner)
_with_scanner(tls_records, _tls_scanner)
_with_scanner(http, _HTTPScanner)


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
        found = import_object(value)
    except LookupError as exc:
        raise UsageError(
            f"framer={value!r} could not be imported: {exc}", parameter="framer", value=value
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


#: Longest message head a framer function is shown before framing gives up on it.
MAX_HEAD = 1 << 20


class Framing:
    """One direction's stream, cut into messages by a framer, as it passes.

    A framer with a ``scanner()`` (the built-in ones) is fed each byte once; a
    framer function is shown the current message from its start until it
    answers, for at most :data:`MAX_HEAD` bytes.
    """

    def __init__(self, framer: Callable[[bytes], Any]) -> None:
        self.framer = framer
        self._make_scanner = getattr(framer, "scanner", None)
        self._scanner = self._make_scanner() if self._make_scanner is not None else None
        self.index = 0  # The message the next byte belongs to.
        self._head = bytearray()  # The current message while its length is unknown.
        self._length: int | None = None
        self._position = 0  # Bytes of the current message passed so far.
        #: Why framing stopped (the framer raised or answered nonsense), if it did.
        self.failed: str | None = None

    def split(self, data: bytes) -> list[tuple[int, bytes]]:
        """``data`` as ``(message index, piece)`` pairs, in order."""
        if self._scanner is not None:
            return self._scan(data)
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

    def _scan(self, data: bytes) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        while data:
            if self.failed is not None or self._scanner is None:
                out.append((self.index, data))
                break
            try:
                end = self._scanner.feed(data)
            except Exception as exc:  # A malformed stream: report it, never break the relay.
                self.failed = f"the framer gave up: {exc}"
                end = None
            if end is None:
                self._position += len(data)
                out.append((self.index, data))
                break
            end = max(end, 0 if self._position else 1)  # A message has at least a byte.
            if end:
                out.append((self.index, data[:end]))
            data = data[end:]
            self.index += 1
            self._position = 0
            self._scanner = self._make_scanner() if self._make_scanner is not None else None
        return out

    def _measure(self) -> int | None:
        if len(self._head) > MAX_HEAD:
            self.failed = f"the framer found no end within the first {MAX_HEAD} bytes"
            return None
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
