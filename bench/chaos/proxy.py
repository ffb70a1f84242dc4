"""A small TCP fault proxy (toxiproxy is not installable here) between the gateway and an emulator.

Faults are decided per HTTP request: a chunk from the client that starts with an HTTP method opens a request
(the gateway keeps connections alive, so per-connection faults would hit almost nothing). A plan:

* ``latency_ms``: hold the request this long before forwarding it.
* ``stall_ms``: forward the first bytes of the answer (its headers), then stop for this long.
* ``reset``: drop the connection with a TCP reset instead of forwarding the request.
* ``cut_after_bytes`` (N): forward N bytes of the answer, then close both sides.
* ``share`` (0..1, default 1): the share of requests hit (deterministic: 0.25 hits every fourth).
* ``down``: refuse every connection (the listening socket is closed and open connections are dropped)
  until a plan without ``down`` is set.

Bounded: reads are 64 KiB at most, and a connection's buffers are the kernel's.
"""

import asyncio
import socket
import struct
from dataclasses import dataclass, field

METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ", b"HEAD ", b"OPTIONS ")
READ = 65536


@dataclass
class Plan:
    latency_ms: int = 0
    stall_ms: int = 0
    reset: bool = False
    cut_after_bytes: int | None = None
    share: float = 1.0
    down: bool = False
    _credit: float = 0.0

    @classmethod
    def from_json(cls, data: dict) -> "Plan":
        known = {"latency_ms", "stall_ms", "reset", "cut_after_bytes", "share", "down"}
        if not isinstance(data, dict) or set(data) - known:
            raise ValueError(f"a plan is an object with fields among {sorted(known)}")
        plan = cls(**data)
        if not 0 < plan.share <= 1:
            raise ValueError("share must be in (0, 1]")
        return plan

    @property
    def active(self) -> bool:
        return bool(self.latency_ms or self.stall_ms or self.reset or self.cut_after_bytes is not None)

    def roll(self) -> bool:
        if not self.active:
            return False
        self._credit += self.share
        if self._credit < 1 - 1e-9:
            return False
        self._credit -= 1
        return True


@dataclass
class Stats:
    connections: int = 0
    requests: int = 0
    faulted: dict = field(default_factory=dict)


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1", port: int = 0):
        self.target = (target_host, target_port)
        self.host, self.port = host, port
        self.plan = Plan()
        self.stats = Stats()
        self._server: asyncio.base_events.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]  # the same port again after `down`

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._open):
            _reset(writer)

    async def set_plan(self, plan: Plan) -> None:
        self.plan = plan
        if plan.down and self._server is not None:
            await self.stop()
        elif not plan.down and self._server is None:
            await self.start()

    def _note(self, kind: str) -> None:
        self.stats.faulted[kind] = self.stats.faulted.get(kind, 0) + 1

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        self._open.add(client_w)
        upstream_w = None
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.target)
            self._open.add(upstream_w)
            current: dict = {}  # the fault of the request being answered (shared by both pumps)
            back = asyncio.create_task(self._answer(upstream_r, client_w, current))
            try:
                while chunk := await client_r.read(READ):
                    if chunk.startswith(METHODS):
                        self.stats.requests += 1
                        current.clear()
                        current["sent"] = 0
                        if self.plan.roll():
                            plan = self.plan
                            current["plan"] = plan
                            if plan.reset:
                                self._note("reset")
                                _reset(client_w)
                                return
                            if plan.latency_ms:
                                self._note("latency")
                                await asyncio.sleep(plan.latency_ms / 1000)
                    upstream_w.write(chunk)
                    await upstream_w.drain()
            finally:
                back.cancel()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            for writer in (client_w, upstream_w):
                if writer is not None:
                    self._open.discard(writer)
                    writer.close()

    async def _answer(self, upstream_r, client_w, current: dict) -> None:
        try:
            while chunk := await upstream_r.read(READ):
                plan = current.get("plan")
                if plan is not None and plan.cut_after_bytes is not None:
                    room = plan.cut_after_bytes - current["sent"]
                    if len(chunk) >= room:
                        self._note("cut")
                        client_w.write(chunk[:max(room, 0)])
                        await client_w.drain()
                        client_w.close()
                        return
                client_w.write(chunk)
                await client_w.drain()
                first = current.get("sent", 0) == 0
                current["sent"] = current.get("sent", 0) + len(chunk)
                if plan is not None and plan.stall_ms and first:
                    self._note("stall")
                    await asyncio.sleep(plan.stall_ms / 1000)
        except (ConnectionError, OSError):
            pass
        finally:
            client_w.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed peer or a firewall does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()
