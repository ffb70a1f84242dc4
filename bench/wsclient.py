"""Many concurrent WebSocket chat streams for the benchmark (`/v1/realtime/chat`, loopback only).

Opens `--sockets` sockets (starts spread over `--ramp` seconds), sends one streamed request on each
(the mock answers `--chunks` chunks every `--interval-ms`), and holds every socket open until all
have finished, so the gateway holds them all at its peak. A socket counts as complete when its
`done` frame arrives after at least `--chunks` content chunks and no `error` frame. Prints one JSON
object: opened, completed, errors (with the first few reasons), max_open, wall_s.
"""

import argparse
import asyncio
import sys
import time
from urllib.parse import urlsplit

import orjson
import websockets

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


async def one(url, key, body, chunks, state, all_started, hold):
    try:
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {key}"}, max_size=2**20,
                                      open_timeout=30, ping_interval=None, compression=None) as ws:
            state["open"] += 1
            state["max_open"] = max(state["max_open"], state["open"])
            await ws.send(body)
            seen = 0
            async for raw in ws:
                frame = orjson.loads(raw)
                kind = frame.get("type") or frame.get("object")
                if kind == "chat.completion.chunk":
                    seen += 1
                elif kind == "done":
                    if seen >= chunks:
                        state["completed"] += 1
                    else:
                        state["errors"].append(f"done after {seen} chunks")
                    break
                elif kind == "error":
                    state["errors"].append(str(frame.get("error"))[:200])
                    break
            await all_started.wait()
            await hold.wait()  # every socket stays open until the last one has finished
            state["open"] -= 1
    except Exception as exc:  # a refused or broken socket is an error of the run, reported, never raised
        state["errors"].append(f"{type(exc).__name__}: {exc}"[:200])


async def run(args) -> dict:
    parts = urlsplit(args.url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("wsclient only talks to loopback")
    body = orjson.dumps({"type": "request", "model": args.model, "stream": True, "messages": [
        {"role": "user", "content": f"Count for me. chunks={args.chunks} interval_ms={args.interval_ms}"}]})
    state = {"open": 0, "max_open": 0, "completed": 0, "errors": []}
    all_started, hold = asyncio.Event(), asyncio.Event()
    t0 = time.monotonic()
    tasks = []
    for _ in range(args.sockets):
        tasks.append(asyncio.create_task(one(args.url, args.key, body, args.chunks, state, all_started, hold)))
        if args.ramp:
            await asyncio.sleep(args.ramp / args.sockets)
    all_started.set()

    async def release_when_finished():
        while state["completed"] + len(state["errors"]) < args.sockets:
            await asyncio.sleep(0.1)
        await asyncio.sleep(args.linger)
        hold.set()

    releaser = asyncio.create_task(release_when_finished())
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.timeout)
    except TimeoutError:
        state["errors"].append(f"timed out after {args.timeout}s")
    releaser.cancel()
    errors = state["errors"]
    return {"sockets": args.sockets, "opened": state["max_open"], "completed": state["completed"],
            "errors": len(errors), "error_samples": errors[:5], "max_open": state["max_open"],
            "wall_s": time.monotonic() - t0}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/v1/realtime/chat")
    p.add_argument("--key", required=True)
    p.add_argument("--model", default="bench-model")
    p.add_argument("--sockets", type=int, default=1000)
    p.add_argument("--chunks", type=int, default=20)
    p.add_argument("--interval-ms", type=int, default=250)
    p.add_argument("--ramp", type=float, default=5.0)
    p.add_argument("--linger", type=float, default=1.0, help="seconds all sockets stay open after the last answer")
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args()
    if uvloop is not None:
        uvloop.install()
    print(orjson.dumps(asyncio.run(run(args))).decode())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
