"""Unit tests (no server) for what the stream parsers hold while an upstream misbehaves: a line,
an event, a whole stream and held-back reasoning whitespace are all bounded (issue 8 item 8)."""

import pytest

from apps.providers.adapters.sse import MAX_EVENT_BYTES, MAX_LINE_BYTES, LineSplitter, StreamFormatError, iter_ndjson, iter_sse
from apps.providers.adapters.thinking import ThinkSplitter


class Reads:
    """aiohttp's StreamReader as far as the parsers use it: `count` reads of `chunk`, then `tail`."""

    def __init__(self, chunk: bytes, count: int, head: bytes = b"", tail: bytes = b""):
        self.chunk, self.count, self.head, self.tail = chunk, count, head, tail

    async def iter_any(self):
        if self.head:
            yield self.head
        for _ in range(self.count):
            yield self.chunk
        if self.tail:
            yield self.tail


async def drain(events):
    return [e async for e in events]


@pytest.mark.parametrize("line_break", [b"\n", b"\r\n"])
async def test_an_event_past_its_bound_is_a_format_error(line_break):
    line = b"data: " + b"x" * 1000 + line_break
    with pytest.raises(StreamFormatError, match="event exceeds"):
        await drain(iter_sse(Reads(line, MAX_EVENT_BYTES // 1000 + 1), 1 << 40))


@pytest.mark.parametrize("head", [b"data: ", b"data: x\r", b"\n"])
async def test_a_line_past_its_bound_is_a_format_error_however_it_arrives(head):
    with pytest.raises(StreamFormatError, match="line exceeds"):
        await drain(iter_sse(Reads(b"y" * 1000, MAX_LINE_BYTES // 1000 + 1, head=head), 1 << 40))
    with pytest.raises(StreamFormatError, match="line exceeds"):
        await drain(iter_ndjson(Reads(b"y" * 1000, MAX_LINE_BYTES // 1000 + 1, head=head), 1 << 40))


async def test_a_long_line_in_many_reads_is_still_one_line():
    event = b"data: " + b"z" * (MAX_LINE_BYTES - 100)
    events = await drain(iter_sse(Reads(b"", 0, head=event[:10], tail=event[10:] + b"\n\n"), 1 << 40))
    assert [len(e.data) for e in events] == [MAX_LINE_BYTES - 100]
    pieces = [event[i : i + 7] for i in range(0, len(event), 7)]

    class Many:
        async def iter_any(self):
            for piece in pieces:
                yield piece
            yield b"\n\n"

    assert [e.data for e in await drain(iter_sse(Many(), 1 << 40))] == [events[0].data]


async def test_a_stream_past_its_byte_bound_is_a_format_error():
    event = b'data: {"a":1}\n\n'
    assert len(await drain(iter_sse(Reads(event, 100), 100 * len(event)))) == 100
    with pytest.raises(StreamFormatError, match="stream exceeds"):
        await drain(iter_sse(Reads(event, 101), 100 * len(event)))
    with pytest.raises(StreamFormatError, match="stream exceeds"):
        await drain(iter_ndjson(Reads(b'{"a":1}\n', 101), 100 * 8))


def test_the_line_splitter_keeps_only_the_unfinished_line():
    splitter = LineSplitter()
    assert splitter.feed(b"a\r") == [b"a"]
    assert splitter.feed(b"\nb") == []
    assert splitter.feed(b"c\rd\n") == [b"bc", b"d"]
    assert splitter.flush() is None


def test_the_think_splitter_holds_back_a_bounded_run_of_whitespace():
    splitter = ThinkSplitter()
    assert splitter.feed("<think>why") == [("reasoning", "why")]
    for _ in range(5000):
        splitter.feed(" ")
        assert len(splitter.buf) <= 2048
    assert splitter.feed("ok</think>answer")[-1] == ("content", "answer")
