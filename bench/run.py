"""`make bench`: XRouter against a mock upstream and the same mock directly, in one sitting.

The production setup: PostgreSQL (a fresh database) and Redis, the key in the database, usage through
the real buffer → Redis stream → writer → PostgreSQL, one alias
and one routing rule, `manage.py serve --workers 2` with the usage writer as its child.

Steps (durations are flags; the defaults keep the whole run near 4 minutes, `--quick` near 1):
  1. wrk, non-streamed, at 1, 16 and 64 connections, gateway and direct: requests/s, latency
     (added p50/p99 at 1 client = gateway − direct), CPU of every gateway process per request.
  2. A fixed-count run (`--cpu-requests`): CPU seconds per 1,000 requests, usage drained first; then the
     same run with an OAuth access token instead of the key (it must cost the same: one cache).
  3. Streams at 16 concurrent: added time-to-first-token; a long-stream run: CPU per chunk.
  4. Hold tests: 500 streams × 200 chunks at 50 ms; 5,000 slow streams × 20 chunks at 500 ms.
  5. Resident memory: idle after warm-up, peak during the 5,000-stream hold, per open stream.
  6. WebSockets (measured right after the idle reading): 1,000 sockets on /v1/realtime/chat held at once, one streamed answer each: completed,
     errors, resident memory per open socket.
  7. Usage rows in PostgreSQL against the requests the gateway forwarded to the mock.
  8. With --reports (opt-in): billing reports over 10 million usage rows in a database of their own, kept
     between runs (bench/reports.py): a monthly statement, a 30-day dashboard and the admin overview, cold, p95 of 5 runs.
Writes bench/results/latest.{md,json} (`--quick`: quick.{md,json}) and prints the table.

Every load step is bounded in time and count and targets 127.0.0.1 only. Every process this
script starts runs in its own process group and is stopped on exit, error or Ctrl-C.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import procs
import report

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
HOST = "127.0.0.1"
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


class BenchError(Exception):
    """A failure with a message for the user (no traceback)."""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- processes ----------------------------------------------------------------------------------
class Children:
    """Every long-lived process we start: own process group, stopped in reverse order."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.items: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        out = open(self.log_dir / f"{name}.log", "wb")
        p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        out.close()
        self.items.append((name, p))
        return p

    def stop(self, name: str, grace: float = 15.0) -> None:
        for n, p in list(self.items):
            if n == name:
                _stop_group(p, grace)
                self.items.remove((n, p))

    def stop_all(self) -> None:
        for _name, p in reversed(self.items):
            _stop_group(p, 15.0)
        self.items.clear()

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop_group(p: subprocess.Popen, grace: float) -> None:
    """SIGTERM the leader (it stops its own children), then SIGKILL whatever is left of its group."""
    pgid = p.pid  # start_new_session: the leader's pid is the group id
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def run_bounded(argv: list[str], env: dict, timeout: float, name: str) -> str:
    """A short-lived child (wrk, the stream client): own group, killed past `timeout`; returns stdout."""
    p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise BenchError(f"{name} did not finish within {timeout:.0f} s") from None
    except BaseException:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    if p.returncode != 0:
        raise BenchError(f"{name} exited with {p.returncode}: {err.decode(errors='replace')[-800:]}")
    return out.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_json(method: str, url: str, body=None, headers=None, timeout=5.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with HTTP.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_http(url: str, proc: subprocess.Popen, seconds: float, name: str, children: Children) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode} while starting:\n{children.tail(name)}")
        try:
            if http_json("GET", url, timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise BenchError(f"{name} did not answer {url} within {seconds:.0f} s:\n{children.tail(name)}")


# --- services -----------------------------------------------------------------------------------
def check_services(args):
    try:
        import psycopg
    except ImportError:
        raise BenchError("psycopg is not installed in this Python; run `make venv` first") from None
    try:
        conn = psycopg.connect(f"{args.pg_url}/postgres", autocommit=True, connect_timeout=3)
    except Exception as exc:
        raise BenchError(
            f"PostgreSQL is not reachable at {args.pg_url} ({exc}).\n"
            "The benchmark runs the production setup: start PostgreSQL (user postgres, trust auth on 127.0.0.1) "
            "or pass --pg-url postgres://USER@HOST:PORT") from None
    import redis

    try:
        r = redis.Redis.from_url(args.redis_url, socket_connect_timeout=3, socket_timeout=5)
        r.ping()
    except Exception as exc:
        conn.close()
        raise BenchError(f"Redis is not reachable at {args.redis_url} ({exc}).\n"
                         "The benchmark runs the production setup: start Redis or pass --redis-url") from None
    return conn, r


def recreate_database(admin_conn, name: str) -> None:
    if not name.replace("_", "").isalnum():
        raise BenchError(f"database name {name!r} must be alphanumeric with underscores")
    admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin_conn.execute(f'CREATE DATABASE "{name}"')


def django_env(args, stream: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "xrouter_project.settings",
        "DATABASE_URL": f"{args.pg_url}/{args.db_name}",
        "REDIS_URL": args.redis_url,
        "XROUTER_USAGE_STREAM": stream,
        "XROUTER_FETCH_ALLOW": "127.0.0.0/8",  # the mock upstream is on loopback (apps/providers/destinations.py)
        "DEBUG": "false",
        "LOG_LEVEL": "warning",
        "XROUTER_LOG_JSON": "false",
        "XROUTER_SHUTDOWN_GRACE": "5",  # only how long the bench waits for streams at the end
        "PYTHONUNBUFFERED": "1",
    })
    return env


# --- measurement helpers ------------------------------------------------------------------------
class Bench:
    def __init__(self, args):
        self.args = args
        self.results: dict = {"notes": []}
        self.log_dir = Path(args.out) / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.children = Children(self.log_dir)
        self.gateway: subprocess.Popen | None = None
        self.mock: subprocess.Popen | None = None
        self.gateway_url = ""
        self.mock_url = ""
        self.key = "none"
        self.oauth_token = "none"
        self.db = None
        self.usage_table = ""
        self.wrk_gateway_connections = 0
        self.noise: list[dict] = []  # CPU used by processes outside the benchmark, per measured step
        self.last_other_share = 0.0
        self.last_step: dict = {}
        self.ncpu = len(os.sched_getaffinity(0))  # responses wrk may abandon at the end of its runs (usage tolerance)

    # the process trees
    def gateway_pids(self) -> list[int]:
        return procs.tree(self.gateway.pid) if self.gateway else []

    def mock_pids(self) -> list[int]:
        return [self.mock.pid]

    def service_pids(self) -> list[int]:
        """Our PostgreSQL backends (this database, not our own query connection)."""
        if self.db is None:
            return []
        rows = self.db.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                               (self.args.db_name,)).fetchall()
        return [r[0] for r in rows]

    def redis_cpu(self) -> float:
        info = self.redis.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def snapshot(self) -> dict:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the load tools, once reaped
        return {
            "gateway": procs.cpu_snapshot(self.gateway_pids()),
            "mock": procs.cpu_snapshot(self.mock_pids()),
            "postgres": procs.cpu_snapshot(self.service_pids()),
            "redis": self.redis_cpu(),
            "load": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
            "system": procs.system_busy_seconds(),
            "t": time.monotonic(),
        }

    def cpu_since(self, snap: dict, label: str) -> tuple[float, float]:
        """(gateway, mock) CPU seconds since `snap`. PostgreSQL, Redis, the load tools and whatever else
        ran on the machine go to self.noise and self.last_step."""
        now = self.snapshot()
        gateway = procs.cpu_seconds(snap["gateway"], now["gateway"])
        mock = procs.cpu_seconds(snap["mock"], now["mock"])
        postgres = procs.cpu_seconds(snap["postgres"], now["postgres"])
        redis_s = now["redis"] - snap["redis"]
        load = now["load"] - snap["load"]
        elapsed = now["t"] - snap["t"]
        other = max(0.0, (now["system"] - snap["system"]) - gateway - mock - postgres - redis_s - load)
        self.last_step = {"step": label, "elapsed_s": elapsed, "gateway": gateway, "mock": mock, "postgres": postgres,
                          "redis": redis_s, "load_tools": load, "other": other}
        self.noise.append(self.last_step)
        self.last_other_share = other / (elapsed * self.ncpu) if elapsed else 0.0
        return gateway, mock

    def mock_stats(self) -> dict:
        status, body = http_json("GET", f"http://{HOST}:{self.mock_port}/stats")
        if status != 200:
            raise BenchError(f"mock /stats answered {status}")
        return json.loads(body)

    def usage_rows(self) -> int:
        return self.db.execute(f'SELECT count(*) FROM "{self.usage_table}"').fetchone()[0]

    def drain_usage(self, timeout: float = 20.0) -> int:
        """Wait until every request the gateway forwarded has its usage row (or `timeout`)."""
        if self.gateway is None:
            return 0
        want = self.mock_stats()["requests_gateway"] - self.wrk_gateway_connections
        deadline = time.monotonic() + timeout
        rows = self.usage_rows()
        while rows < want and time.monotonic() < deadline:
            time.sleep(0.25)
            rows = self.usage_rows()
        time.sleep(0.3)
        return self.usage_rows()

    # wrk
    def wrk(self, target: str, connections: int, duration: float, max_requests: int = 0, latency: bool = False,
            auth: str = "", model: str = "bench-model") -> dict:
        """auth: the gateway credential (default the API key; the OAuth run passes its access token)."""
        direct = target == "direct"
        url = (self.mock_url if direct else self.gateway_url) + "/chat/completions"
        threads = 1 if connections < 4 else 2
        env = {**os.environ, "BENCH_AUTH": "mock" if direct else (auth or self.key), "BENCH_DIRECT": "1" if direct else "0",
               "BENCH_MAX": str(max_requests), "BENCH_THREADS": str(threads), "BENCH_MODEL": model}
        argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
                "-s", str(BENCH / "post.lua")] + (["--latency"] if latency else []) + [url]
        if not direct:
            self.wrk_gateway_connections += connections
        if not max_requests:
            out = run_bounded(argv, env, duration + 30, "wrk")
        else:
            out = self._wrk_count(argv, env, duration, max_requests, direct)
        for line in out.splitlines():
            if line.startswith("BENCH_JSON "):
                data = json.loads(line[len("BENCH_JSON "):])
                break
        else:
            raise BenchError(f"wrk printed no summary:\n{out[-800:]}")
        data["rps"] = data["requests"] / (data["duration_us"] / 1e6) if data["duration_us"] else 0.0
        data["errors"] = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
        data["p50_ms"], data["p99_ms"] = data["lat_p50_us"] / 1000, data["lat_p99_us"] / 1000
        return data

    def _wrk_count(self, argv, env, duration, max_requests, direct) -> str:
        """wrk until the mock has seen `max_requests` more requests from this side, or `duration`."""
        field = "requests_direct" if direct else "requests_gateway"
        start = self.mock_stats()[field]
        p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + duration
            while p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
                if self.mock_stats()[field] - start >= max_requests:
                    break
            if p.poll() is None:
                p.send_signal(signal.SIGINT)  # wrk prints its summary on SIGINT
            out, err = p.communicate(timeout=30)
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            raise
        return out.decode()

    # the stream client
    def streams(self, target: str, base_url: str = "", **kw) -> dict:
        direct = target == "direct"
        url = (base_url or (self.mock_url if direct else self.gateway_url)) + "/chat/completions"
        argv = [PY, str(BENCH / "streamclient.py"), "--url", url, "--key", "mock" if direct else self.key]
        if direct:
            argv.append("--direct")
        for k, v in kw.items():
            argv += [f"--{k.replace('_', '-')}", str(v)]
        timeout = float(kw.get("timeout", 120))
        out = run_bounded(argv, dict(os.environ), timeout + 30, "streamclient")
        return json.loads(out.strip().splitlines()[-1])

    # --- the steps ------------------------------------------------------------------------------
    def setup(self):
        a = self.args
        if not shutil.which("wrk"):
            raise BenchError("wrk is not installed. Install it with:\n    sudo apt-get install -y wrk")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:  # as root the hard limit may be raised too; otherwise the soft one up to the hard one
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, 65536), max(hard, 65536)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # inherited by every child we start
        admin, self.redis = check_services(a)
        give_up = time.monotonic() + a.wait_idle
        while True:
            busy0, t0 = procs.system_busy_seconds(), time.monotonic()
            time.sleep(2)
            self.results["load_before"] = (procs.system_busy_seconds() - busy0) / ((time.monotonic() - t0) * self.ncpu)
            if self.results["load_before"] <= 0.15 or time.monotonic() >= give_up:
                break
            log(f"the machine is {self.results['load_before']:.0%} busy; waiting for it to settle "
                f"(--wait-idle, {give_up - time.monotonic():.0f} s left)")
        if self.results["load_before"] > 0.2:
            log(f"note: the machine is {self.results['load_before']:.0%} busy before the benchmark starts; "
                "figures will be noisy")
        need = a.slow_streams * 2 + 1000
        if hard < need:
            self.results["notes"].append(f"open-files hard limit {hard} is below the ~{need} the hold test needs")
            log(f"warning: open-files hard limit {hard} < {need}; raise it (ulimit -Hn) for the 5,000-stream hold")

        self.stream_name = f"xrouter:usage:bench:{os.getpid()}"
        self.env = django_env(a, self.stream_name)
        self.mock_port = free_port()
        self.mock_url = f"http://{HOST}:{self.mock_port}/v1"
        self.mock = self.children.start("mock", [PY, str(BENCH / "mock_upstream.py"), "--port", str(self.mock_port)],
                                        dict(os.environ))
        wait_http(f"http://{HOST}:{self.mock_port}/healthz", self.mock, 15, "mock", self.children)
        if a.tracing:  # every request and attempt traced, spans exported over OTLP/HTTP to the mock
            self.env["XROUTER_OTLP_ENDPOINT"] = f"http://{HOST}:{self.mock_port}"
        if a.direct_only:
            admin.close()
            return

        log(f"database {a.db_name}: drop, create, migrate")
        recreate_database(admin, a.db_name)
        admin.close()
        self._manage(["migrate", "--noinput"], "migrate", 300)
        limits = ["--limits"] if a.limits else []
        out = subprocess.run([PY, str(BENCH / "provision.py"), "--mock-url", self.mock_url, *limits], cwd=ROOT,
                             env=self.env, capture_output=True, timeout=120)
        if out.returncode != 0:
            raise BenchError(f"provisioning failed:\n{out.stderr.decode(errors='replace')[-2000:]}")
        prov = json.loads(out.stdout.decode().strip().splitlines()[-1])
        self.key, self.oauth_token, self.usage_table = prov["key"], prov["oauth_token"], prov["usage_table"]
        self.limited_key, self.unlimited_key = prov["limited_key"], prov["unlimited_key"]
        self.results["settings_rule"] = prov["rule"]
        import psycopg

        self.db = psycopg.connect(f"{a.pg_url}/{a.db_name}", autocommit=True)

        port = free_port()
        self.gateway_url = f"http://{HOST}:{port}/v1"
        log(f"gateway: manage.py serve --workers {a.workers} --port {port}")
        self.gateway = self.children.start(
            "gateway", [PY, "manage.py", "serve", "--host", HOST, "--port", str(port), "--workers", str(a.workers)],
            self.env)
        wait_http(f"http://{HOST}:{port}/healthz", self.gateway, 60, "gateway", self.children)
        deadline = time.monotonic() + 30
        while len(self.gateway_pids()) < a.workers + 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # the master, its workers and the usage writer
        self.smoke()

    def _manage(self, argv, name, timeout):
        out = subprocess.run([PY, "manage.py", *argv], cwd=ROOT, env=self.env, capture_output=True, timeout=timeout)
        if out.returncode != 0:
            raise BenchError(f"manage.py {' '.join(argv)} failed:\n{out.stdout.decode(errors='replace')[-1500:]}"
                             f"{out.stderr.decode(errors='replace')[-2500:]}")

    def smoke(self):
        """One request and one stream through the gateway before any load: fail early and clearly."""
        status, body = http_json("POST", self.gateway_url + "/chat/completions",
                                 {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]},
                                 {"Authorization": f"Bearer {self.key}"}, timeout=15)
        if status != 200 or b'"choices"' not in body:
            raise BenchError(f"the gateway does not serve a chat completion (HTTP {status}): {body[:600]!r}\n"
                             f"gateway log:\n{self.children.tail('gateway')}")
        s = self.streams("gateway", mode="hold", streams=2, chunks=3, interval_ms=10, timeout=20)
        if s["completed"] != 2:
            raise BenchError(f"the gateway does not relay a stream: {s['error_kinds']}\n"
                             f"gateway log:\n{self.children.tail('gateway')}")

    def warmup_and_idle(self):
        a = self.args
        log(f"warm-up {a.warmup:g} s each side")
        self.wrk("direct", 16, a.warmup)
        if self.gateway:
            self.wrk("gateway", 16, a.warmup)
            self.drain_usage()
            time.sleep(1.0)
            pids = self.gateway_pids()
            samples = []
            for _ in range(5):
                samples.append(procs.total_rss_kib(pids))
                time.sleep(0.2)
            self.idle_rss_kib = sorted(samples)[len(samples) // 2]
            self.idle_pss_kib = sum(procs.pss_kib(pid) for pid in pids)
            self.results["processes"] = procs.describe(pids, self.gateway.pid)
        self.mock_idle_rss_kib = procs.rss_kib(self.mock.pid)

    def rps_runs(self):
        a = self.args
        self.results["rps"] = {}
        for c in a.connections:
            run = {}
            for side in ("direct", "gateway"):
                if side == "gateway" and not self.gateway:
                    continue
                log(f"wrk {side}: {c} connection(s), {a.duration:g} s")
                snap = self.snapshot()
                stats0 = self.mock_stats()
                data = self.wrk(side, c, a.duration, latency=(c == 1))
                if side == "gateway":
                    self.drain_usage()
                g_cpu, m_cpu = self.cpu_since(snap, f"wrk {side}, {c} connections")
                stats1 = self.mock_stats()
                served = stats1[f"requests_{side}"] - stats0[f"requests_{side}"]
                data["served"] = served
                data["gateway_cpu_ms_per_request"] = g_cpu / served * 1000 if side == "gateway" and served else None
                data["mock_cpu_ms_per_request"] = m_cpu / served * 1000 if served else None
                data["other_cpu_share"] = self.last_other_share
                run[side] = data
            self.results["rps"][str(c)] = run
        one = self.results["rps"].get("1", {})
        if one.get("gateway") and one.get("direct"):
            g, d = one["gateway"], one["direct"]
            self.results["latency"] = {
                "gateway_p50_ms": g["p50_ms"], "gateway_p99_ms": g["p99_ms"],
                "direct_p50_ms": d["p50_ms"], "direct_p99_ms": d["p99_ms"],
                "added_p50_ms": g["p50_ms"] - d["p50_ms"], "added_p99_ms": g["p99_ms"] - d["p99_ms"],
            }

    def cpu_run(self):
        if self.gateway:
            self.results["cpu"] = self._cpu_per_request("API key", self.key)

    def limited_cpu_run(self):
        """The same run with a key that carries rate limits (requests, tokens, concurrency; too high to refuse):
        the limiter's cost, redis-server's CPU included, beside the headline."""
        if not self.gateway:
            return
        if self.args.limits:  # the headline has them: measure a key without, for the limiter's cost
            self.results["unlimited_cpu"] = self._cpu_per_request("API key and model without limits", self.unlimited_key,
                                                                   model="bench-model-free")
        else:
            self.results["limited_cpu"] = self._cpu_per_request("rate-limited API key", self.limited_key)

    def oauth_cpu_run(self):
        """The same run with an OAuth access token: it must cost what a key costs (the same in-process cache)."""
        if self.gateway:
            self.results["oauth_cpu"] = self._cpu_per_request("OAuth access token", self.oauth_token)

    def _cpu_per_request(self, what: str, auth: str, model: str = "bench-model") -> dict:
        a = self.args
        log(f"CPU ({what}): {a.cpu_requests:,} requests at {a.cpu_connections} connections (at most {a.cpu_max_seconds:g} s)")
        self.drain_usage()
        snap = self.snapshot()
        stats0 = self.mock_stats()
        data = self.wrk("gateway", a.cpu_connections, a.cpu_max_seconds, max_requests=a.cpu_requests, auth=auth,
                        model=model)
        self.drain_usage()  # the writer's share of the work counts too
        after = procs.cpu_snapshot(self.gateway_pids())
        g_cpu, m_cpu = self.cpu_since(snap, f"CPU run ({what}), {a.cpu_connections} connections")
        served = self.mock_stats()["requests_gateway"] - stats0["requests_gateway"]
        if not served:
            raise BenchError("the CPU run served no request")
        pids = self.gateway_pids()
        by_role: dict[str, float] = {}
        for p in procs.describe(pids, self.gateway.pid):
            spent = (after.get(p["pid"], 0) - snap["gateway"].get(p["pid"], 0)) / procs.CLK_TCK
            by_role[p["role"]] = by_role.get(p["role"], 0.0) + spent / served * 1000
        return {
            "requests": served, "connections": a.cpu_connections, "processes": len(pids),
            "wrk_requests": data["requests"], "errors": data["errors"], "rps": data["rps"],
            "gateway_cpu_s": g_cpu, "mock_cpu_s": m_cpu,
            "gateway_ms_per_request": g_cpu / served * 1000,
            "gateway_cpu_s_per_1000": g_cpu / served * 1000,
            "mock_ms_per_request": m_cpu / served * 1000,
            "mock_share": m_cpu / g_cpu if g_cpu else None,
            "other_cpu_share": self.last_other_share,
            "postgres_ms_per_request": self.last_step["postgres"] / served * 1000,
            "redis_ms_per_request": self.last_step["redis"] / served * 1000,
            "load_tool_ms_per_request": self.last_step["load_tools"] / served * 1000,
            "by_role_ms_per_request": by_role,
        }

    def stream_runs(self):
        a = self.args
        sides = ["direct"] + (["gateway"] if self.gateway else [])
        ttft = {"streams": a.ttft_streams}
        for side in sides:
            log(f"streams {side}: time-to-first-token at {a.ttft_streams} concurrent, {a.stream_duration:g} s")
            ttft[side] = self.streams(side, mode="loop", streams=a.ttft_streams, chunks=20, interval_ms=20,
                                      stagger=0.4, duration=a.stream_duration, timeout=a.stream_duration + 30)
        d = ttft["direct"]
        ttft["direct_p50_ms"], ttft["direct_p99_ms"] = d["ttft_ms_p50"], d["ttft_ms_p99"]
        if "gateway" in ttft and ttft["gateway"]["ttft_ms_p50"] is not None:
            g = ttft["gateway"]
            ttft["gateway_p50_ms"], ttft["gateway_p99_ms"] = g["ttft_ms_p50"], g["ttft_ms_p99"]
            ttft["added_p50_ms"] = g["ttft_ms_p50"] - d["ttft_ms_p50"]
            ttft["added_p99_ms"] = g["ttft_ms_p99"] - d["ttft_ms_p99"]
        self.results["ttft"] = ttft
        if not self.gateway:
            return
        n, interval = a.chunk_chunks, a.chunk_interval_ms
        short = max(2, n // 10)
        runs = {}
        for chunks_per_stream in (n, short):
            log(f"streams gateway: CPU per chunk, {a.ttft_streams} concurrent × {chunks_per_stream} chunks at "
                f"{interval} ms, {a.stream_duration:g} s")
            self.drain_usage()
            snap = self.snapshot()
            s = self.streams("gateway", mode="loop", streams=a.ttft_streams, chunks=chunks_per_stream,
                             interval_ms=interval, stagger=chunks_per_stream * interval / 1000,
                             duration=a.stream_duration,
                             timeout=a.stream_duration + chunks_per_stream * interval / 1000 + 30)
            self.drain_usage()
            g_cpu, m_cpu = self.cpu_since(snap, f"{chunks_per_stream}-chunk streams, {a.ttft_streams} concurrent")
            runs[chunks_per_stream] = (s, g_cpu, m_cpu, s["events_ok"] - s["completed"])  # data events but [DONE]
        s, g_cpu, m_cpu, chunks = runs[n]
        chunk = {
            "streams": s["completed"], "errors": s["errors"], "chunks": chunks, "chunks_per_stream": n,
            "interval_ms": interval, "gateway_cpu_s": g_cpu, "mock_cpu_s": m_cpu,
            "gateway_ms_per_chunk": g_cpu / chunks * 1000 if chunks else None,
            "mock_ms_per_chunk": m_cpu / chunks * 1000 if chunks else None,
            "other_cpu_share": self.last_other_share,
        }
        # Two runs that differ only in stream length split the cost into a fixed part per stream and a
        # marginal part per chunk: cpu = streams × per_stream + chunks × per_chunk.
        s2, g2, _m2, c2 = runs[short]
        det = s["completed"] * c2 - s2["completed"] * chunks
        if det and s2["completed"]:
            per_chunk = (s["completed"] * g2 - s2["completed"] * g_cpu) / det
            chunk["marginal_ms_per_chunk"] = per_chunk * 1000
            chunk["fixed_ms_per_stream"] = (g2 - c2 * per_chunk) / s2["completed"] * 1000
            chunk["short_run"] = {"streams": s2["completed"], "chunks": c2, "gateway_cpu_s": g2,
                                  "errors": s2["errors"]}
        chunk["floor"] = self.passthrough_chunks(n, interval)
        self.results["chunk"] = chunk

    def passthrough_chunks(self, chunks: int, interval: int) -> dict:
        """The same long-stream step through bench/passthrough.py (uvicorn + aiohttp copying bytes):
        the floor any gateway on these libraries pays per chunk, with the gateway's worker count."""
        a = self.args
        port = free_port()
        argv = [PY, "-m", "uvicorn", "--app-dir", str(BENCH), "passthrough:app", "--host", HOST, "--port", str(port),
                "--workers", str(a.workers), "--loop", "uvloop", "--http", "httptools", "--lifespan", "off",
                "--log-level", "warning", "--no-access-log"]
        proc = self.children.start("passthrough", argv, {**os.environ, "BENCH_UPSTREAM": self.mock_url})
        try:
            wait_http(f"http://{HOST}:{port}/healthz", proc, 30, "passthrough", self.children)
            deadline = time.monotonic() + 20
            while len(procs.tree(proc.pid)) < a.workers + 2 and time.monotonic() < deadline:
                time.sleep(0.2)  # the supervisor, its workers and the resource tracker
            time.sleep(1.5)
            log(f"streams pass-through floor: {a.ttft_streams} concurrent × {chunks} chunks at {interval} ms")
            before = procs.cpu_snapshot(procs.tree(proc.pid))
            s = self.streams("direct", base_url=f"http://{HOST}:{port}/v1", mode="loop", streams=a.ttft_streams,
                             chunks=chunks, interval_ms=interval, stagger=chunks * interval / 1000,
                             duration=a.stream_duration, timeout=a.stream_duration + chunks * interval / 1000 + 30)
            cpu = procs.cpu_seconds(before, procs.cpu_snapshot(procs.tree(proc.pid)))
        finally:
            self.children.stop("passthrough")
        relayed = s["events_ok"] - s["completed"]
        return {"streams": s["completed"], "errors": s["errors"], "chunks": relayed, "cpu_s": cpu,
                "ms_per_chunk": cpu / relayed * 1000 if relayed else None}

    def hold(self, name, streams, chunks, interval_ms, ramp):
        pace = chunks * interval_ms / 1000
        h = {"streams": streams, "chunks": chunks, "interval_ms": interval_ms, "ramp_s": ramp, "pace_s": pace}
        timeout = ramp + pace * 3 + 30
        for side in ["direct"] + (["gateway"] if self.gateway else []):
            log(f"hold {side}: {streams:,} streams × {chunks} chunks at {interval_ms} ms (pace {pace:g} s"
                + (f", starts spread over {ramp:g} s)" if ramp else ")"))
            if side == "gateway":
                self.drain_usage()
                snap = self.snapshot()
                with procs.RssSampler(self.gateway.pid) as sampler:
                    res = self.streams(side, mode="hold", streams=streams, chunks=chunks, interval_ms=interval_ms,
                                       ramp=ramp, timeout=timeout)
                self.drain_usage()
                g_cpu, _m = self.cpu_since(snap, f"hold gateway, {streams} streams")
                relayed = res["events_ok"] - res["completed"]
                h["gateway_cpu_s"] = g_cpu
                h["gateway_ms_per_chunk"] = g_cpu / relayed * 1000 if relayed else None
                h["peak_rss_kib"] = sampler.peak
                h["other_cpu_share"] = self.last_other_share
            else:
                res = self.streams(side, mode="hold", streams=streams, chunks=chunks, interval_ms=interval_ms,
                                   ramp=ramp, timeout=timeout)
            h[side] = res
            key = "" if side == "gateway" else "direct_"
            h[key + "wall_ratio"] = res["wall_s"] / (pace + ramp)
            h[key + "max_ratio"] = res["duration_s_max"] / pace if res["duration_s_max"] else None
        self.results[name] = h

    def websockets_run(self):
        """Sockets held at once on /v1/realtime/chat, each streaming one answer: resident memory per socket."""
        a = self.args
        if not self.gateway or not a.ws_sockets:
            return
        log(f"websockets: {a.ws_sockets:,} sockets × {a.ws_chunks} chunks at {a.ws_interval_ms} ms "
            f"(starts spread over {a.ws_ramp:g} s)")
        self.drain_usage()
        time.sleep(1.0)
        base = procs.total_rss_kib(self.gateway_pids())
        url = self.gateway_url.replace("http://", "ws://").removesuffix("/v1") + "/v1/realtime/chat"
        argv = [PY, str(BENCH / "wsclient.py"), "--url", url, "--key", self.key, "--sockets", str(a.ws_sockets),
                "--chunks", str(a.ws_chunks), "--interval-ms", str(a.ws_interval_ms), "--ramp", str(a.ws_ramp)]
        timeout = a.ws_ramp + a.ws_chunks * a.ws_interval_ms / 1000 * 3 + 60
        with procs.RssSampler(self.gateway.pid) as sampler:
            out = run_bounded(argv + ["--timeout", str(timeout)], dict(os.environ), timeout + 30, "wsclient")
        res = json.loads(out.strip().splitlines()[-1])
        res["base_rss_kib"] = base
        res["peak_rss_kib"] = sampler.peak
        res["per_socket_kib"] = (sampler.peak - base) / res["max_open"] if res["max_open"] else None
        self.results["websockets"] = res
        self.drain_usage()

    def memory(self):
        if not self.gateway:
            return
        slow = self.results.get("slow") or {}
        peak = slow.get("peak_rss_kib")
        opened = (slow.get("gateway") or {}).get("max_streaming") or 0
        mem = {
            "processes": len(self.gateway_pids()),
            "idle_mib": self.idle_rss_kib / 1024,
            "idle_pss_mib": self.idle_pss_kib / 1024,
            "mock_idle_mib": self.mock_idle_rss_kib / 1024,
            "peak_mib": peak / 1024 if peak else None,
            "peak_streams": opened,
            "per_stream_kib": (peak - self.idle_rss_kib) / opened if peak and opened else None,
            "hold_peak_mib": (self.results.get("hold") or {}).get("peak_rss_kib", 0) / 1024 or None,
        }
        self.results["memory"] = mem

    def usage_check(self):
        if not self.gateway:
            return
        log("usage: waiting for the writer, then counting rows")
        rows = self.drain_usage(timeout=30)
        forwarded = self.mock_stats()["requests_gateway"]
        tolerance = self.wrk_gateway_connections
        self.results["usage"] = {
            "rows": rows, "forwarded": forwarded, "tolerance": tolerance,
            "ok": forwarded - tolerance <= rows <= forwarded,
            "stream_backlog": self.redis.xlen(self.stream_name),
        }

    def reports_run(self):
        """bench/reports.py in its own process (its own database, kept between runs)."""
        a = self.args
        log(f"reports: {a.reports_rows:,} usage rows in {a.reports_db} (generated once), roll-ups, statement, dashboard, admin overview")
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        out = run_bounded([PY, str(BENCH / "reports.py"), "--rows", str(a.reports_rows), "--pg-url", a.pg_url,
                           "--db-name", a.reports_db], env, 6 * 3600, "reports")
        result = json.loads(out.strip().splitlines()[-1])
        if "error" in result:
            raise BenchError(result["error"])
        self.results["reports"] = result

    def machine(self) -> dict:
        cpu_model = ""
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        mem_kib = 0
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
        try:
            wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, timeout=5).stdout.decode().split("[")[0].strip()
        except Exception:
            wrk_version = "wrk"
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                    timeout=5).stdout.decode().strip() or "unknown"
        except Exception:
            commit = "unknown"
        return {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": len(os.sched_getaffinity(0)),
            "cpu_model": cpu_model,
            "mem_gib": mem_kib / 1024 / 1024,
            "kernel": platform.release(),
            "python": platform.python_version(),
            "wrk": wrk_version or "wrk",
            "commit": commit,
        }

    def run(self):
        a = self.args
        started = time.monotonic()
        self.results["machine"] = self.machine()
        self.setup()
        self.warmup_and_idle()
        self.websockets_run()  # first, while the workers' memory is still at idle: the growth is the sockets'
        self.rps_runs()
        self.cpu_run()
        self.oauth_cpu_run()
        self.limited_cpu_run()
        self.stream_runs()
        self.hold("hold", a.hold_streams, a.hold_chunks, a.hold_interval_ms, 0.0)
        self.hold("slow", a.slow_streams, a.slow_chunks, a.slow_interval_ms, a.slow_ramp)
        self.memory()
        self.usage_check()
        if a.reports:
            self.reports_run()
        self.results["elapsed_s"] = time.monotonic() - started
        self.noise_note()

    def noise_note(self):
        """Say how much CPU processes outside the benchmark took while it measured (a shared machine)."""
        if not self.noise:
            return
        elapsed = sum(n["elapsed_s"] for n in self.noise)
        other = sum(n["other"] for n in self.noise)
        share = other / (elapsed * self.ncpu) if elapsed else 0.0
        self.results["other_load"] = {"cpu_s": other, "measured_s": elapsed, "share": share, "steps": self.noise}
        if share > 0.03:
            self.results["notes"].append(
                f"Processes outside the benchmark used {other:.1f} CPU-s ({share:.0%} of the machine) during the "
                f"{elapsed:.0f} s of measured steps; figures are noisier than on an idle machine (see 'other load').")

    def finish(self):
        """Stop everything we started; drop the database unless --keep-db."""
        self.children.stop_all()
        if self.db is not None:
            self.db.close()
        redis_client = getattr(self, "redis", None)
        if redis_client is not None:
            try:
                redis_client.delete(self.stream_name)
            except Exception:
                pass
        if not self.args.keep_db and not self.args.direct_only and getattr(self, "env", None):
            try:
                import psycopg

                with psycopg.connect(f"{self.args.pg_url}/postgres", autocommit=True, connect_timeout=3) as c:
                    c.execute(f'DROP DATABASE IF EXISTS "{self.args.db_name}" WITH (FORCE)')
            except Exception as exc:
                log(f"could not drop {self.args.db_name}: {exc}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Benchmark XRouter against a mock upstream and the mock directly.")
    p.add_argument("--quick", action="store_true", help="a short smoke run (about a minute); writes quick.{md,json}")
    p.add_argument("--no-limits", dest="limits", action="store_false",
                   help="the headline key and model carry no rate limits or budget (by default they carry limits and a "
                        "budget too high to refuse anything, so every request is admitted, reserved and settled "
                        "through Redis, as in production; one extra CPU run then uses a key without them)"),
    p.add_argument("--tracing", action="store_true",
                   help="OpenTelemetry on: every request and attempt traced to a local OTLP sink; writes tracing.{md,json}")
    p.add_argument("--duration", type=float, default=10, help="seconds per wrk step (default 10)")
    p.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per side (default 3)")
    p.add_argument("--connections", default="1,16,64", help="wrk connection counts (default 1,16,64)")
    p.add_argument("--cpu-requests", type=int, default=20000, help="requests in the CPU run (default 20000)")
    p.add_argument("--cpu-connections", type=int, default=16, help="connections in the CPU run (default 16)")
    p.add_argument("--cpu-max-seconds", type=float, default=30, help="bound on the CPU run (default 30)")
    p.add_argument("--stream-duration", type=float, default=8, help="seconds per streaming step (default 8)")
    p.add_argument("--ttft-streams", type=int, default=16, help="concurrent streams for TTFT and per-chunk CPU")
    p.add_argument("--chunk-chunks", type=int, default=200, help="chunks per stream in the per-chunk CPU run")
    p.add_argument("--chunk-interval-ms", type=int, default=5, help="chunk interval in the per-chunk CPU run")
    p.add_argument("--hold-streams", type=int, default=500)
    p.add_argument("--hold-chunks", type=int, default=200)
    p.add_argument("--hold-interval-ms", type=int, default=50)
    p.add_argument("--ws-sockets", type=int, default=1000, help="WebSocket sockets held at once (0: skip)")
    p.add_argument("--ws-chunks", type=int, default=20)
    p.add_argument("--ws-interval-ms", type=int, default=250)
    p.add_argument("--ws-ramp", type=float, default=5.0)
    p.add_argument("--slow-streams", type=int, default=5000)
    p.add_argument("--slow-chunks", type=int, default=20)
    p.add_argument("--slow-interval-ms", type=int, default=1000)
    p.add_argument("--slow-ramp", type=float, default=10,
                   help="spread the slow streams' starts over this many seconds (default 10; keep it below the "
                        "streams' pace so that all are open at once)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"),
                   help="PostgreSQL server URL, without the database name")
    p.add_argument("--db-name", default="xrouter_bench", help="dropped and recreated (default xrouter_bench)")
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--out", default=str(BENCH / "results"), help="results directory (default bench/results)")
    p.add_argument("--wait-idle", type=float, default=0,
                   help="wait up to this many seconds for the machine to be under 15%% busy before starting")
    p.add_argument("--keep-db", action="store_true", help="leave the benchmark database for inspection")
    p.add_argument("--direct-only", action="store_true", help="measure the mock and the load tools alone (no gateway)")
    p.add_argument("--reports", action="store_true",
                   help="also time billing reports over --reports-rows usage rows (bench/reports.py; the first run "
                        "generates them, minutes for 10 million, and needs 10 GB of free disk)")
    p.add_argument("--reports-rows", type=int, default=10_000_000)
    p.add_argument("--reports-db", default="xrouter_bench_reports", help="kept between runs (default xrouter_bench_reports)")
    args = p.parse_args(argv)
    if args.quick:
        for name, value in {"duration": 2, "warmup": 1, "cpu_requests": 3000, "cpu_max_seconds": 5,
                            "stream_duration": 2, "chunk_chunks": 100, "hold_streams": 100, "hold_chunks": 20,
                            "slow_streams": 1000, "slow_chunks": 4, "slow_interval_ms": 500, "slow_ramp": 1,
                            "ws_sockets": 200, "ws_chunks": 4, "ws_ramp": 1}.items():
            if getattr(args, name) == p.get_default(name):
                setattr(args, name, value)
    args.connections = [int(c) for c in str(args.connections).split(",") if c.strip()]
    for host_url in (args.pg_url, args.redis_url):
        if "127.0.0.1" not in host_url and "localhost" not in host_url:
            p.error(f"{host_url}: the benchmark talks to 127.0.0.1 only")
    return args


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    bench = Bench(args)
    command = "make bench" if not argv and not sys.argv[1:] else "bench/run.py " + " ".join(argv or sys.argv[1:])
    code = 0
    try:
        bench.run()
    except BenchError as exc:
        log(f"error: {exc}")
        code = 2
    except KeyboardInterrupt:
        log("interrupted; stopping everything this run started")
        code = 130
    finally:
        bench.finish()
    if code:
        return code
    r = bench.results
    r["command"] = command
    r["settings"] = {k: v for k, v in vars(args).items() if k not in ("pg_url", "redis_url", "out")}
    r["settings"]["rule"] = r.pop("settings_rule", False)
    r["checks"] = report.checks(r)
    md = report.markdown(r)
    out = Path(args.out)
    stem = "quick" if args.quick else "tracing" if args.tracing else "latest"
    (out / f"{stem}.md").write_text(md)
    (out / f"{stem}.json").write_text(json.dumps(r, indent=2, default=str) + "\n")
    print()
    print(md)
    log(f"wrote {out / (stem + '.md')} and {stem}.json in {r['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
