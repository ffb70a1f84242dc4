"""Read and total time limits for streamed upstream bodies, without a timer per chunk.

aiohttp's `sock_read` and `total` timeouts re-arm a timer on every network read and enter a
timeout context on every wait: about 6 µs per relayed chunk on our benchmark machine, a
tenth of the per-chunk budget (README, "Performance"). Streamed bodies are opened without
them (transport.open_stream) and watched here instead: one sweeper task per event loop
notices a body whose byte count stopped moving for `read` seconds while a read was waiting
for it (upstream silence, not a slow client's back-pressure), or that outlived `total`, and
fails its pending read with the exception aiohttp itself would have raised. The sweeper runs
only while streams are open.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

MAX_TICK = 1.0  # a stall is noticed between `read` and `read + tick` seconds
MIN_TICK = 0.05


@dataclass(slots=True)
class _Watch:
    read: float | None
    deadline: float | None
    seen: int
    moved: float


class _Sweeper:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.watched: dict[aiohttp.ClientResponse, _Watch] = {}
        self.tick = MAX_TICK
        self.task: asyncio.Task | None = None

    def add(self, resp: aiohttp.ClientResponse, read: float | None, total: float | None) -> None:
        now = self.loop.time()
        self.watched[resp] = _Watch(read, now + total if total else None, resp.content.total_bytes, now)
        shortest = min(limit for limit in (read, total, MAX_TICK * 4) if limit)
        self.tick = max(MIN_TICK, min(self.tick, shortest / 4))
        if self.task is None:
            self.task = self.loop.create_task(self._run(), name="upstream-stream-watchdog")

    def remove(self, resp: aiohttp.ClientResponse) -> None:
        self.watched.pop(resp, None)
        if not self.watched and self.task is not None:
            self.task.cancel()
            self.task = None
            self.tick = MAX_TICK

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            now = self.loop.time()
            for resp, watch in list(self.watched.items()):
                if resp.closed:  # released without remove(): nothing left to guard
                    self.watched.pop(resp, None)
                    continue
                size = resp.content.total_bytes
                # Silence counts only while a read is waiting for data (aiohttp's StreamReader sets
                # _waiter then). A consumer that is not reading is busy elsewhere: a client that
                # reads slowly holds the relay in its send, and the upstream's bytes wait for us.
                if size != watch.seen or resp.content._waiter is None:
                    watch.seen, watch.moved = size, now
                elif watch.read and now - watch.moved >= watch.read:
                    self._fail(resp, aiohttp.ServerTimeoutError("Timeout on reading data from socket"))
                    continue
                if watch.deadline is not None and now >= watch.deadline:
                    if resp.content._waiter is None:  # we were not reading: the consumer held the stream
                        self._fail(resp, HeldByConsumerError("the stream outlived the total timeout while its reader was busy"))
                    else:
                        self._fail(resp, TotalTimeoutError("the stream outlived the upstream's total timeout"))
            if not self.watched:  # every body here was released without forget()
                self.task = None
                _sweepers.pop(self.loop, None)
                return

    def _fail(self, resp: aiohttp.ClientResponse, exc: Exception) -> None:
        self.watched.pop(resp, None)
        resp.content.set_exception(exc)  # wakes the pending read, which raises it


class TotalTimeoutError(TimeoutError):
    """A streamed body ran past the provider's total timeout."""


class HeldByConsumerError(TotalTimeoutError):
    """The total timeout ran out while nothing was reading the body (a slow client held the relay):
    the stream is cut all the same, but the provider is not to blame."""


_sweepers: dict[asyncio.AbstractEventLoop, _Sweeper] = {}


def watch(resp: aiohttp.ClientResponse, read: float | None, total: float | None) -> None:
    """Guard `resp`'s body until forget(resp)."""
    if not read and not total:
        return
    loop = asyncio.get_running_loop()
    sweeper = _sweepers.get(loop)
    if sweeper is None:
        sweeper = _sweepers[loop] = _Sweeper(loop)
    sweeper.add(resp, read, total)


def forget(resp: aiohttp.ClientResponse) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    sweeper = _sweepers.get(loop)
    if sweeper is not None:
        sweeper.remove(resp)
        if not sweeper.watched:
            del _sweepers[loop]


def watched_count() -> int:
    """Bodies under watch in this event loop (tests: nothing is left behind)."""
    try:
        sweeper = _sweepers.get(asyncio.get_running_loop())
    except RuntimeError:
        return 0
    return len(sweeper.watched) if sweeper else 0
