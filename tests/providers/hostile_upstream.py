"""A loopback upstream that answers with prepared hostile bytes, and a memory probe.

The server writes one chunk `repeat` times, so a 64 MiB stream costs the test no 64 MiB buffer.
"""

import tracemalloc
import zlib
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Script:
    status: int = 200
    headers: dict = field(default_factory=lambda: {"Content-Type": "application/json"})
    head: bytes = b""
    chunk: bytes = b""
    repeat: int = 0
    tail: bytes = b""


class HostileUpstream:
    def __init__(self):
        self.script = Script()
        self.origin = ""
        self._runner = None

    async def start(self):
        async def handler(request):
            await request.read()
            script = self.script
            response = web.StreamResponse(status=script.status, headers=script.headers)
            await response.prepare(request)
            try:
                if script.head:
                    await response.write(script.head)
                for _ in range(script.repeat):
                    await response.write(script.chunk)
                if script.tail:
                    await response.write(script.tail)
                await response.write_eof()
            except (ConnectionError, RuntimeError):
                pass  # the client stopped reading: what the bounds are for
            return response

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.origin = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    def answer(self, status=200, content_type="application/json", encoding=None, head=b"", chunk=b"", repeat=0, tail=b""):
        headers = {"Content-Type": content_type}
        if encoding:
            headers["Content-Encoding"] = encoding
        self.script = Script(status, headers, head, chunk, repeat, tail)

    async def stop(self):
        await self._runner.cleanup()


def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes, gzipped (about 1000:1)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    out = [compressor.compress(block) for _ in range(size // len(block))]
    out.append(compressor.flush())
    data = b"".join(out)
    return data


async def peak_memory(awaitable) -> tuple[BaseException | None, object, int]:
    """(exception or None, result, tracemalloc peak in bytes) of awaiting `awaitable`."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    error, result = None, None
    try:
        result = await awaitable
    except BaseException as exc:  # noqa: BLE001 - the caller asserts on it
        error = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return error, result, peak
