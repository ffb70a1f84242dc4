"""The battery's upstream side in one process of its own: the emulators and a fault proxy in front of each.

    python -m bench.chaos.upstream --only mts tbank --ledger-size 100000

Prints one JSON line, {"emulators": {name: port}, "proxies": {name: port}, "control": port}, then serves
until SIGTERM. The proxies' control API (loopback): `POST /proxy/<name>` takes a plan (bench/chaos/proxy.py),
`GET /proxy/<name>` answers the plan and counts. The emulators keep their own control API (/_emulator/…).
"""

import argparse
import asyncio
import json
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from apps.emulators.server import start_emulators, stop_emulators  # noqa: E402
from bench.chaos.proxy import FaultProxy, Plan  # noqa: E402


async def serve(names: list[str], ledger_size: int) -> None:
    emulators = await start_emulators(ports=dict.fromkeys(names, 0), options={n: {"ledger_size": ledger_size} for n in names})
    proxies = {name: FaultProxy("127.0.0.1", emulator.port) for name, emulator in emulators.items()}
    for proxy in proxies.values():
        await proxy.start()

    async def set_plan(request: web.Request) -> web.Response:
        proxy = proxies.get(request.match_info["name"])
        if proxy is None:
            raise web.HTTPNotFound()
        try:
            await proxy.set_plan(Plan.from_json(await request.json()))
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def get_plan(request: web.Request) -> web.Response:
        proxy = proxies.get(request.match_info["name"])
        if proxy is None:
            raise web.HTTPNotFound()
        plan = {k: v for k, v in asdict(proxy.plan).items() if not k.startswith("_")}
        return web.json_response({"plan": plan, "stats": asdict(proxy.stats)})

    app = web.Application()
    app.router.add_post("/proxy/{name}", set_plan)
    app.router.add_get("/proxy/{name}", get_plan)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(json.dumps({"emulators": {n: e.port for n, e in emulators.items()},
                      "proxies": {n: p.port for n, p in proxies.items()},
                      "control": runner.addresses[0][1]}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    while not stop.is_set() and os.getppid() == parent:  # gone with the battery, even a killed one
        try:
            await asyncio.wait_for(stop.wait(), 1)
        except TimeoutError:
            pass
    for proxy in proxies.values():
        await proxy.stop()
    await runner.cleanup()
    await stop_emulators(emulators)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="+", default=["mts", "tbank"])
    parser.add_argument("--ledger-size", type=int, default=100_000)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.only, args.ledger_size))


if __name__ == "__main__":
    main()
