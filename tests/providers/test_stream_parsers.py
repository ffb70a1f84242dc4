"""Pure unit tests: SSE / NDJSON framing and the inline <think> splitter, over every split point."""

import pytest

from apps.providers.adapters.sse import LineSplitter, StreamFormatError, iter_ndjson, iter_sse
from apps.providers.adapters.thinking import ThinkSplitter, split_think, strip_think

LIMIT = 64 * 1024 * 1024


class FakeContent:
    """Stands in for aiohttp's StreamReader: yields the given network chunks."""

    def __init__(self, chunks):
        self.chunks = [c.encode() if isinstance(c, str) else c for c in chunks]

    async def iter_any(self):
        for chunk in self.chunks:
            yield chunk


def every_split(data: bytes):
    """The body cut into two network chunks at every position, plus one chunk per byte."""
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]
    yield [data[i : i + 1] for i in range(len(data))]


SSE_BODY = (
    b": keep-alive comment\r\n"
    b'data: {"a":1}\r\n\r\n'
    b"event: message\n"
    b'data: {"b":"\xd0\x9f\xd1\x80\xd0\xb8"}\n\n'
    b'data: {"c":\n'
    b"data: 3}\n\n"
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("chunks", list(every_split(SSE_BODY)))
async def test_it_reads_sse_events_whatever_the_network_splits(chunks):
    events = [e async for e in iter_sse(FakeContent(chunks), LIMIT)]
    assert [e.data for e in events] == ['{"a":1}', '{"b":"При"}', '{"c":\n3}', "[DONE]"]
    assert events[1].event == "message"


async def test_one_event_per_network_chunk_reads_the_same_as_any_other_split():
    # One whole single-line event per read is the fast path; an event name, an id or a pending
    # half event still go through the general path and must keep their meaning.
    chunks = [
        b'data: {"a":1}\n\n',
        b"event: error\n",
        b'data: {"e":1}\n\n',
        b"id: 7\n\n",
        b'data: {"b":2}\n\n',
        b'data: {"c":\n',
        b'data: 3}\n\n',
        b'data: {"d":"\r"}\n\n',
        b"data: [DONE]\n\n",
    ]
    events = [e async for e in iter_sse(FakeContent(chunks), LIMIT)]
    assert [(e.data, e.event, e.id) for e in events] == [
        ('{"a":1}', "", ""), ('{"e":1}', "error", ""), ('{"b":2}', "", "7"), ('{"c":\n3}', "", "7"),
        ('{"d":"', "", "7"), ("[DONE]", "", "7"),  # a \r breaks the line: '"}' is a nameless field
    ]


async def test_it_accepts_a_lone_carriage_return_split_from_its_line():
    chunks = [b'data: {"a":1}\r', b'\rdata: {"b":2}\r', b"\n\r\n"]
    assert [e.data for e in [e async for e in iter_sse(FakeContent(chunks), LIMIT)]] == ['{"a":1}', '{"b":2}']


async def test_it_keeps_a_final_event_that_lacks_its_blank_line():
    assert [e.data async for e in iter_sse(FakeContent([b'data: {"a":1}\n']), LIMIT)] == ['{"a":1}']


async def test_it_refuses_a_line_without_end(monkeypatch):
    monkeypatch.setattr("apps.providers.adapters.sse.MAX_LINE_BYTES", 100)
    splitter = LineSplitter()
    with pytest.raises(StreamFormatError):
        splitter.feed(b"x" * 101)


NDJSON_BODY = b'{"result":{"a":1}}\n\n{"result":{"a":2}}\r\n{"result":{"a":3}}'


@pytest.mark.parametrize("chunks", list(every_split(NDJSON_BODY)))
async def test_it_reads_ndjson_lines_whatever_the_network_splits(chunks):
    lines = [line async for line in iter_ndjson(FakeContent(chunks), LIMIT)]
    assert lines == [b'{"result":{"a":1}}', b'{"result":{"a":2}}', b'{"result":{"a":3}}']


# --- <think> ---------------------------------------------------------------------------------
INLINE = "<think>\nLet me see: 2+2.\n</think>\n\nIt is 4."


def test_it_splits_inline_reasoning_from_a_whole_message():
    assert split_think(INLINE) == ("Let me see: 2+2.", "It is 4.")
    assert split_think("plain answer") == (None, "plain answer")
    assert split_think("<think>\ncut while thinking") == ("cut while thinking", "")
    assert strip_think(INLINE) == "It is 4."


def run_splitter(pieces):
    splitter = ThinkSplitter()
    out = []
    for piece in pieces:
        out += splitter.feed(piece)
    out += splitter.flush()
    reasoning = "".join(t for k, t in out if k == "reasoning")
    content = "".join(t for k, t in out if k == "content")
    return reasoning, content, out


@pytest.mark.parametrize("i", range(len(INLINE) + 1))
@pytest.mark.parametrize("j", [None, 5, 17, 30, 37])
def test_it_splits_streamed_reasoning_whatever_the_chunking(i, j):
    cuts = sorted({i, j if j is not None else i})
    pieces = [INLINE[: cuts[0]], INLINE[cuts[0] : cuts[-1]], INLINE[cuts[-1] :]]
    reasoning, content, out = run_splitter([p for p in pieces if p])
    assert (reasoning, content) == ("Let me see: 2+2.", "It is 4.")
    assert not any("<" in t and "think" in t for _, t in out)


def test_it_streams_reasoning_one_character_at_a_time():
    assert run_splitter(list(INLINE))[:2] == ("Let me see: 2+2.", "It is 4.")


def test_it_passes_answers_without_reasoning_through_at_once():
    splitter = ThinkSplitter()
    assert splitter.feed("Hello") == [("content", "Hello")]
    assert splitter.feed(" <think> is a tag") == [("content", " <think> is a tag")]


def test_it_holds_back_what_might_open_a_think_block_until_it_cannot():
    splitter = ThinkSplitter()
    assert splitter.feed("<th") == []
    assert splitter.feed("at") == [("content", "<that")]


def test_it_reports_unfinished_reasoning_as_reasoning():
    assert run_splitter(["<think>\nstill thinking", " when cut"])[:2] == ("still thinking when cut", "")


def test_the_think_splitter_stops_waiting_after_a_long_run_of_whitespace():
    splitter = ThinkSplitter()
    assert splitter.feed(" " * 1000) == []
    assert splitter.feed(" " * 100) == [("content", " " * 1100)]
    assert splitter.feed("<think>x</think>") == [("content", "<think>x</think>")]
