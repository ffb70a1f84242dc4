"""Inline reasoning: `<think>…</think>` at the start of `content` (Qwen3-family models served
without a reasoning parser, e.g. vLLM without `--reasoning-parser`). See shared/providers/tbank.md §4.

DeepSeek-R1 distills and QwQ have chat templates that put `<think>` into the prompt, so their
output holds only the closing `</think>` (vLLM issues #12999, #17144): text before a lone
`</think>` is reasoning too, and a model known to do this (`started`) begins inside the reasoning.
"""

from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"
# Whitespace held back while waiting to see whether "<think>" (or "</think>") comes: past this
# it is sent on, so an upstream sending only spaces is not buffered and re-scanned per chunk.
MAX_LEADING_SPACE = 1024


def split_think(text: str | None, started: bool = False) -> tuple[str | None, str | None]:
    """(reasoning, answer) of a whole message; reasoning is None when there is no think block.
    `started`: the prompt opened the think block, so the message begins inside it."""
    if not text:
        return None, text
    stripped = text.lstrip()
    if stripped.startswith(OPEN):
        body = stripped[len(OPEN) :]
    else:
        body = stripped
        end = body.find(CLOSE)
        if not started and (end < 0 or OPEN in body[:end]):
            return None, text  # no think block (a "</think>" after an opening tag is not lone)
    end = body.find(CLOSE)
    if end < 0:
        # Cut by max_tokens while still thinking: everything so far is reasoning.
        return body.strip(), ""
    return body[:end].strip(), body[end + len(CLOSE) :].lstrip()


def strip_think(text):
    """An assistant turn of the history without its reasoning: it must never go back upstream."""
    if not isinstance(text, str):
        return text
    reasoning, answer = split_think(text)
    return text if reasoning is None else answer


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag` (a tag split across chunks)."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ThinkSplitter:
    """Streaming version of split_think: feed content deltas, get ("reasoning" | "content", text) pieces.

    Tags may be split anywhere across chunks, so a tail that could still become a tag is held
    back until the next chunk decides. Whitespace around the reasoning is dropped, as in
    split_think, so streamed and non-streamed answers read the same.
    """

    __slots__ = ("buf", "state")

    def __init__(self, started: bool = False) -> None:
        # start → think → after → answer, or start → answer; a model whose prompt opened the
        # think block (`started`) begins in think_start, and an opening tag it repeats is dropped.
        self.state = "think_start" if started else "start"
        self.buf = ""

    def parsed_upstream(self) -> None:
        """The server split the reasoning off itself (a reasoning field arrived): content is answer."""
        if self.state in ("start", "think_start") or (self.state == "think" and not self.buf):
            self.state = "answer"

    def feed(self, text: str) -> list[tuple[str, str]]:
        self.buf += text
        out: list[tuple[str, str]] = []
        while True:
            if self.state == "start":
                head = self.buf.lstrip()
                if (not head and len(self.buf) <= MAX_LEADING_SPACE) or (head and OPEN.startswith(head) and head != OPEN):
                    return out  # undecided: nothing but whitespace or the beginning of "<think>"
                if head.startswith(OPEN):
                    self.buf, self.state = head[len(OPEN) :].lstrip(), "think"
                    if not self.buf:
                        self.state = "think_start"
                    continue
                self.state = "answer"
            elif self.state == "think_start":  # drop the newline(s) right after <think>
                self.buf = self.buf.lstrip()
                if not self.buf or (OPEN.startswith(self.buf) and self.buf != OPEN):
                    return out
                if self.buf.startswith(OPEN):
                    self.buf = self.buf[len(OPEN) :]
                    continue
                self.state = "think"
            elif self.state == "think":
                end = self.buf.find(CLOSE)
                if end >= 0:
                    reasoning = self.buf[:end].rstrip()
                    if reasoning:
                        out.append(("reasoning", reasoning))
                    self.buf, self.state = self.buf[end + len(CLOSE) :], "after"
                    continue
                cut = len(self.buf) - _partial_suffix(self.buf, CLOSE)
                # Trailing whitespace may turn out to precede </think> (and be dropped); a long
                # run of it is sent on, or an upstream sending only spaces would grow the buffer.
                kept = len(self.buf[:cut].rstrip())
                if cut - kept <= MAX_LEADING_SPACE:
                    cut = kept
                if cut:
                    out.append(("reasoning", self.buf[:cut]))
                    self.buf = self.buf[cut:]
                return out
            elif self.state == "after":  # drop the blank lines between </think> and the answer
                self.buf = self.buf.lstrip()
                if not self.buf:
                    return out
                self.state = "answer"
            else:  # answer: pass through
                if self.buf:
                    out.append(("content", self.buf))
                    self.buf = ""
                return out

    def flush(self) -> list[tuple[str, str]]:
        """What is still held back when the choice finishes."""
        rest, self.buf = self.buf, ""
        if not rest:
            return []
        if self.state in ("think", "think_start"):
            return [("reasoning", rest)] if rest.strip() else []
        if self.state == "after":
            return []
        return [("content", rest)]
