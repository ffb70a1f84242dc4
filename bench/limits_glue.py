"""The limiter's cost per request, alone: admission (key limits, organisation limits, a model cap and a
budget) and settling through apps.limits.services against a private redis-server, minus the same loop
for a key without limits. CPU time of this process and of redis-server (read from /proc), per request.

    .venv/bin/python bench/limits_glue.py [--requests 20000] [--concurrency 100]

Use it when the machine is not quiet enough for `make bench`'s limited-key row: CPU time, unlike wall
time, is barely moved by other processes.
"""

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=100)
    args = p.parse_args()
    port, workdir = free_port(), tempfile.mkdtemp(prefix="xr-limits-bench-")
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                              "--dir", workdir], stdout=subprocess.DEVNULL)
    try:
        os.environ.update(REDIS_URL=f"redis://127.0.0.1:{port}/0", XROUTER_REDIS_NAMESPACE="xrbench",
                          DJANGO_SETTINGS_MODULE="xrouter_project.settings")
        import django

        django.setup()
        time.sleep(0.3)
        run(redis.pid, args)
    finally:
        redis.terminate()
        redis.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def run(redis_pid: int, args) -> None:
    import redis as redis_sync

    from apps.common.rates import Limits, Rate
    from apps.keys.selectors import KeyInfo
    from apps.limits import services
    from apps.providers.adapters.base import Usage

    class Model:
        public_id, provider, name = "bench/model", "bench", "model"
        input_price, output_price, cached_input_price = Decimal("0.50"), Decimal("1.20"), Decimal("0")
        max_output_tokens, limits = 1000, Limits(requests=Rate(10**8, 60))

    class Target:
        model, adapter = Model(), None

    class Plan:
        targets = [Target()]

    plain = KeyInfo(id=1, prefix="benchkey", name="b", user_id=1, organisation_id=1, allowed_models=(), residency="",
                    expires_at=None)
    limited = replace(plain, id=2, limits=Limits(requests=Rate(10**8, 60), tokens=Rate(10**11, 60), concurrent=10**6,
                                                 budget=10**15),
                      organisation_limits=Limits(requests=Rate(10**8, 60), budget=10**15))
    client = redis_sync.Redis(port=int(os.environ["REDIS_URL"].rsplit(":", 1)[1].split("/")[0]))
    month = services.calendar()[:6]
    for kind, ident in (("k", 2), ("o", 1)):  # budgets seeded (no database in this benchmark)
        client.set(f"xrbench:lim:{kind}:{ident}:$:{month}", 0)
    plain_model = type("Plain", (Model,), {"limits": None})()

    async def requests(key, model, count):
        plan = Plan() if model is Model else type("P", (), {"targets": [type("T", (), {"model": model, "adapter": None})()]})()
        usage = Usage(prompt_tokens=12, completion_tokens=40)

        async def one(n):
            admission = await services.admit(key, plan, f"r{n}", lambda: (20, 100))
            if admission is not None:
                admission.add(usage, plan.targets[0].model)
                admission.settle()

        for start in range(0, count, args.concurrency):
            await asyncio.gather(*(one(n) for n in range(start, min(count, start + args.concurrency))))
        await services.flush()

    def measure(key, model):
        asyncio.run(requests(key, model, 2000))  # warm-up: scripts loaded, scopes built
        r0, c0 = cpu_ms(redis_pid), time.process_time()
        asyncio.run(requests(key, model, args.requests))
        return (time.process_time() - c0) * 1000 / args.requests, (cpu_ms(redis_pid) - r0) / args.requests

    base_py, base_redis = measure(plain, plain_model)
    lim_py, lim_redis = measure(limited, Model)
    print(f"per request, {args.requests} requests, {args.concurrency} at a time:")
    print(f"  without limits: gateway {base_py:.4f} CPU-ms, redis-server {base_redis:.4f}")
    print(f"  key + organisation limits, model cap, two budgets: gateway {lim_py:.4f} CPU-ms, redis-server {lim_redis:.4f}")
    print(f"  limits' cost: +{lim_py - base_py:.4f} (gateway) +{lim_redis - base_redis:.4f} (redis) = "
          f"+{lim_py - base_py + lim_redis - base_redis:.4f} CPU-ms")


if __name__ == "__main__":
    main()
