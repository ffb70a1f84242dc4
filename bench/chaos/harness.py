"""Everything the battery runs, started by the battery itself: its PostgreSQL cluster and Redis (private
ports, a temporary directory), the emulators behind fault proxies (bench/chaos/upstream.py) and gateway
processes (`manage.py serve --workers N`; the first one runs the usage writer beside its workers, as a
deployment does, and its supervisor restarts a writer that dies). Only these are ever killed."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import procs
from bench.chaos.stores import HOST, Postgres, Redis

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
DATABASE = "xrouter_chaos"
STREAM = "chaos:usage"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Harness:
    def __init__(self, workers: int = 2, gateways: int = 1, limit_keys: int = 3, ledger_size: int = 100_000,
                 env: dict | None = None):
        self.workers, self.gateway_count, self.limit_keys, self.ledger_size = workers, gateways, limit_keys, ledger_size
        self.root = Path(tempfile.mkdtemp(prefix="xrouter-chaos-"))
        os.chmod(self.root, 0o755)
        self.pg = Postgres(self.root, free_port())
        self.redis = Redis(self.root, free_port())
        self.upstream: subprocess.Popen | None = None
        self.gateways: list[tuple[subprocess.Popen, str]] = []
        self.extra_env = env or {}
        self.keys: dict = {}
        self.killed: list[int] = []  # pids the battery killed on purpose (not counted as deaths)

    # --- life cycle ---
    def start(self) -> "Harness":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        log(f"stores in {self.root}: PostgreSQL :{self.pg.port}, Redis :{self.redis.port}")
        self.pg.init()
        self.pg.start()
        self.pg.create_database(DATABASE)
        self.redis.start()
        self.env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        self.env.update({
            "DJANGO_SETTINGS_MODULE": "xrouter_project.settings",
            "DATABASE_URL": self.pg.url(DATABASE), "REDIS_URL": self.redis.url,
            "XROUTER_REDIS_NAMESPACE": "chaos", "XROUTER_USAGE_STREAM": STREAM,
            "XROUTER_SPOOL_DIR": str(self.root / "spool"), "XROUTER_FETCH_ALLOW": "127.0.0.0/8",
            "XROUTER_RATE_SIGNUP": "off", "XROUTER_RATE_LOGIN": "off", "XROUTER_RATE_TOKEN": "off",
            "XROUTER_RATE_API": "off", "XROUTER_LOG_JSON": "false", "LOG_LEVEL": "warning", "DEBUG": "false",
            "XROUTER_SHUTDOWN_GRACE": "10", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT),
            **self.extra_env,
        })
        self._run(["manage.py", "migrate", "--noinput"], 600)
        self.upstream = subprocess.Popen([PY, "-m", "bench.chaos.upstream", "--ledger-size", str(self.ledger_size)],
                                         cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                         stderr=open(self.root / "upstream.log", "wb"), stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        line = self.upstream.stdout.readline()
        if not line:
            raise RuntimeError("the emulators did not start: " + (self.root / "upstream.log").read_text()[-2000:])
        self.ports = json.loads(line)
        urls = {n: f"http://{HOST}:{p}/v1" for n, p in self.ports["proxies"].items()}
        out = self._run([str(ROOT / "bench" / "chaos" / "provision.py"), "--mts-url", urls["mts"],
                         "--tbank-url", urls["tbank"], "--limit-keys", str(self.limit_keys)], 300)
        self.keys = json.loads(out.strip().splitlines()[-1])
        for _ in range(self.gateway_count):
            self.start_gateway()

    def stop(self, keep_logs: Path | None = None) -> None:
        """Stop everything; `keep_logs`: a directory that receives the processes' and stores' logs first."""
        for process, _ in self.gateways:
            _stop_group(process)
        self.gateways.clear()
        if self.upstream is not None:
            _stop_group(self.upstream)
        self.redis.destroy()
        self.pg.destroy()
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            for path in [*self.root.glob("*.log"), *self.root.glob("*.har")]:
                shutil.copy(path, keep_logs / path.name)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, argv: list[str], timeout: float) -> str:
        out = subprocess.run([PY, *argv], cwd=ROOT, env=self.env, capture_output=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed:\n{out.stderr.decode(errors='replace')[-3000:]}")
        return out.stdout.decode()

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        out = open(self.root / f"{name}.log", "ab")
        process = subprocess.Popen([PY, *argv], cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        return process

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.root / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # --- gateway processes ---
    def start_gateway(self) -> str:
        port = free_port()
        index = len(self.gateways)
        writer = [] if index == 0 else ["--no-writer"]  # one usage writer is enough for the battery
        process = self._spawn(f"gateway{index}", ["manage.py", "serve", "--host", HOST, "--port", str(port),
                                                  "--workers", str(self.workers), *writer])
        base = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited with {process.returncode}:\n{self.log_tail(f'gateway{index}')}")
            try:
                if (httpx.get(base + "/healthz", timeout=2).status_code == 200
                        and len(self.worker_pids(process)) >= self.workers and (index or self.writer_pid(process))):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not start in 90 s")
            time.sleep(0.2)
        self.gateways.append((process, base))
        return base

    @property
    def base(self) -> str:
        return self.gateways[0][1]

    def worker_pids(self, process: subprocess.Popen | None = None) -> list[int]:
        pids = []
        for gateway in ([process] if process else [p for p, _ in self.gateways]):
            for pid in procs.tree(gateway.pid):
                cmd = procs.cmdline(pid)
                # Workers are forked by the serve process: its own command line (xrouter_project/server.py).
                if pid != gateway.pid and "xrouter_project.server" in cmd:
                    pids.append(pid)
        return sorted(pids)

    def kill_worker(self, process: subprocess.Popen | None = None) -> int:
        """kill -9 a worker of `process` (by default the first gateway, the one the billing scenario loads)."""
        pid = self.worker_pids(process or self.gateways[0][0])[0]
        os.kill(pid, signal.SIGKILL)
        self.killed.append(pid)
        return pid

    # --- the usage writer ---
    def writer_pid(self, process: subprocess.Popen | None = None) -> int | None:
        process = process or self.gateways[0][0]
        return next((pid for pid in procs.tree(process.pid) if "usage_writer" in procs.cmdline(pid)
                     or "lean_writer" in procs.cmdline(pid)), None)

    def kill_writer(self) -> int:
        """kill -9 the writer; the serve process's supervisor starts another (1 s later, then backing off)."""
        pid = self.writer_pid()
        os.kill(pid, signal.SIGKILL)
        self.killed.append(pid)
        return pid

    # --- stores ---
    def restart_redis(self, down_for: float = 2.0) -> None:
        self.redis.kill()
        time.sleep(down_for)
        self.redis.start()

    def restart_postgres(self, down_for: float = 3.0) -> None:
        self.pg.stop(immediate=True)
        time.sleep(down_for)
        self.pg.start()

    def db(self):
        import psycopg

        return psycopg.connect(self.pg.url(DATABASE), autocommit=True)

    def redis_client(self):
        import redis

        return redis.Redis.from_url(self.redis.url, socket_timeout=5)

    def usage_backlog(self) -> dict:
        """What has not reached the table yet: stream entries, held worker_lost records, spool and journal files."""
        client = self.redis_client()
        spool = self.root / "spool"
        files = [p.name for p in spool.iterdir()] if spool.exists() else []
        return {"stream": client.xlen(STREAM), "lost_held": client.zcard(f"{STREAM}:lost"),
                "spooled": sum(not n.startswith("starts-") for n in files),
                "dead_journals": sum(n.endswith(".lost") for n in files)}

    # --- upstream control ---
    def emulator(self, name: str) -> str:
        return f"http://{HOST}:{self.ports['emulators'][name]}/_emulator"

    def faults(self, name: str, faults: list[dict]) -> None:
        httpx.delete(self.emulator(name) + "/faults", timeout=10).raise_for_status()
        if faults:
            httpx.post(self.emulator(name) + "/faults", json=faults, timeout=10).raise_for_status()

    def ledger(self, name: str) -> list[dict]:
        return httpx.get(self.emulator(name) + "/ledger", timeout=60).json()["entries"]

    def clear_ledger(self, name: str) -> None:
        httpx.delete(self.emulator(name) + "/ledger", timeout=10).raise_for_status()

    def proxy(self, name: str, **plan) -> None:
        httpx.post(f"http://{HOST}:{self.ports['control']}/proxy/{name}", json=plan, timeout=10).raise_for_status()

    def proxy_stats(self, name: str) -> dict:
        return httpx.get(f"http://{HOST}:{self.ports['control']}/proxy/{name}", timeout=10).json()["stats"]


def _stop_group(process: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the leader (it stops its own children), then SIGKILL whatever is left of its group."""
    if process.poll() is None:
        try:
            process.terminate()
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
