"""Incremental parsers for streamed bodies: SSE events and NDJSON lines.

They read `resp.content` (an aiohttp StreamReader) chunk by chunk as the bytes arrive and
never re-read the body. A line may be split across network chunks, or one chunk may hold
many lines; both are handled by buffering only the unfinished tail.

We do not use StreamReader.readline(): it raises on lines longer than its high-water mark
(128 KiB), and one SSE event of a long tool call or a big GigaChat chunk can exceed that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

# Far above any real event (a long tool call, a big GigaChat chunk), low enough that a server
# that never sends a newline or a blank line cannot make us buffer without bound. The bytes of
# a whole stream are bounded by the caller (XROUTER_MAX_STREAM_BYTES).
MAX_LINE_BYTES = 1024 * 1024
MAX_EVENT_BYTES = 1024 * 1024


class StreamFormatError(Exception):
    """The bytes on the wire are not the framing we expected (not a transport failure)."""


@dataclass(slots=True)
class SSEEvent:
    data: str
    event: str = ""
    id: str = ""


class LineSplitter:
    """Feed bytes, get complete lines. Accepts `\\n`, `\\r\\n` and a lone `\\r` (the SSE spec allows all three)."""

    __slots__ = ("_buf", "_pending_cr")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending_cr = False  # the previous chunk ended in \r: a \n may follow as part of the same break

    def feed(self, data: bytes) -> list[bytes]:
        if self._pending_cr and data.startswith(b"\n"):
            data = data[1:]
        self._pending_cr = False
        buf = self._buf
        # What is buffered holds no line break (it is the unfinished line): search only the new
        # bytes, or a long line arriving in many reads would be scanned once per read.
        scanned = len(buf)
        buf += data
        lines: list[bytes] = []
        start = 0
        size = len(buf)
        while True:
            nl = buf.find(b"\n", max(start, scanned))
            cr = buf.find(b"\r", max(start, scanned), nl if nl >= 0 else size)
            if cr >= 0:
                lines.append(bytes(buf[start:cr]))
                if cr + 1 < size:
                    start = cr + 2 if buf[cr + 1] == 0x0A else cr + 1
                else:
                    # We cannot know yet whether this \r is half of a \r\n.
                    start = cr + 1
                    self._pending_cr = True
                    break
            elif nl >= 0:
                lines.append(bytes(buf[start:nl]))
                start = nl + 1
            else:
                break
        del buf[:start]
        if len(buf) > MAX_LINE_BYTES:
            raise StreamFormatError(f"a line exceeds {MAX_LINE_BYTES} bytes")
        return lines

    def flush(self) -> bytes | None:
        """The unterminated last line, if any (a body that does not end in a newline)."""
        if not self._buf:
            return None
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


class StreamTooLong(StreamFormatError):
    """The stream outgrew XROUTER_MAX_STREAM_BYTES: as long as its request asked for, not malformed."""


def too_long(max_bytes: int) -> StreamTooLong:
    return StreamTooLong(f"the stream exceeds {max_bytes} bytes")


async def iter_lines(content, max_bytes: int) -> AsyncIterator[bytes]:
    """Lines of a streamed body without their terminators; the last one may lack a newline."""
    splitter = LineSplitter()
    seen = 0
    async for chunk in content.iter_any():
        seen += len(chunk)
        if seen > max_bytes:
            raise too_long(max_bytes)
        for line in splitter.feed(chunk):
            yield line
    rest = splitter.flush()
    if rest is not None:
        yield rest


class SSEDecoder:
    """The event-stream algorithm of the HTML spec, reduced to what API streams use."""

    __slots__ = ("_data", "_event", "_id", "_size")

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id = ""
        self._size = 0

    def line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            return self.dispatch()
        if raw.startswith(b":"):  # a comment, often a keep-alive ping
            return None
        text = raw.decode("utf-8")
        name, sep, value = text.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._size += len(value) + 1
            if self._size > MAX_EVENT_BYTES:
                raise StreamFormatError(f"an event exceeds {MAX_EVENT_BYTES} bytes")
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        # "retry" and unknown fields are ignored, as the spec says.
        return None

    def pending(self) -> bool:
        """An event is half read (data or an event name seen, no blank line yet)."""
        return bool(self._data or self._event)

    def dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(data="\n".join(self._data), event=self._event, id=self._id)
        self._data = []
        self._event = ""
        self._size = 0
        return event


async def iter_sse(content, max_bytes: int) -> AsyncIterator[SSEEvent]:
    """SSE events of a streamed body of at most `max_bytes`. `[DONE]` is an ordinary event here;
    callers decide what ends a stream.

    One generator, not lines-then-events: this runs once per relayed chunk, and every extra
    async-generator hop costs CPU on the hot path. Bodies with `\r` line breaks, and a line
    still unfinished after a read, take the general LineSplitter path (which appends in place
    instead of re-joining the unfinished line on every read).
    """
    decoder = SSEDecoder()
    splitter = LineSplitter()
    tail = b""
    seen = 0
    try:
        async for chunk in content.iter_any():
            seen += len(chunk)
            if seen > max_bytes:
                raise too_long(max_bytes)
            if (not tail and chunk.startswith(b"data: ") and chunk.find(b"\n") == len(chunk) - 2 and chunk.endswith(b"\n\n")
                    and not decoder.pending() and not splitter._buf and not splitter._pending_cr and b"\r" not in chunk):
                # Fastest path: one read holding exactly one single-line event, the usual case of
                # a token stream that is not under load.
                yield SSEEvent(chunk[6:-2].decode("utf-8"), "", decoder._id)
                continue
            if b"\r" not in chunk and not splitter._buf and not splitter._pending_cr and (not tail or b"\n" in chunk):
                # Fast path: `\n` only (what every provider sends).
                *lines, tail = (tail + chunk).split(b"\n") if tail else chunk.split(b"\n")
                if len(tail) > MAX_LINE_BYTES:
                    raise StreamFormatError(f"a line exceeds {MAX_LINE_BYTES} bytes")
            else:
                lines = splitter.feed(tail + chunk if tail else chunk)
                tail = b""
            for raw in lines:
                event = decoder.line(raw)
                if event is not None:
                    yield event
        rest = (tail or b"") + (splitter.flush() or b"")
        if rest:
            event = decoder.line(rest)
            if event is not None:
                yield event
    except UnicodeDecodeError as exc:
        raise StreamFormatError("the event stream is not valid UTF-8") from exc
    # A server that closes right after its last `data:` line without the blank line still
    # meant that event; the spec would drop it, but losing the final chunk helps nobody.
    event = decoder.dispatch()
    if event is not None:
        yield event


async def iter_ndjson(content, max_bytes: int) -> AsyncIterator[bytes]:
    """Non-empty lines of a newline-delimited JSON body (YandexGPT's native stream)."""
    async for raw in iter_lines(content, max_bytes):
        if raw.strip():
            yield raw
