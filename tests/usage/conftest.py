"""Fixtures of the usage tests: a Redis of the test's own (to stop, pause and restart) and
gateways started with their own stream, spool directory and Redis."""

import os
import signal
import subprocess
import time
import uuid

import psutil
import pytest
import redis as redis_sync
from django.conf import settings

from tests.conftest import Gateway, free_port, need, start_gateway


class PrivateRedis:
    """A redis-server on a free loopback port, without persistence: stop() loses its data, as a
    crashed Redis without AOF does."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrivateRedis":
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )
        client = redis_sync.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis_sync.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(10)

    def pause(self) -> None:
        """The process stays, its socket accepts, nothing answers: a hanging Redis."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def client(self) -> redis_sync.Redis:
        return redis_sync.Redis(port=self.port, socket_timeout=5)


@pytest.fixture
def private_redis():
    server = PrivateRedis().start()
    yield server
    server.stop()


def stop_with_children(process, timeout: float = 40) -> int | None:
    """SIGTERM the gateway, wait for it, and end whatever it left running (its usage writer)."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if process.poll() is None:
        process.terminate()
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        code = None
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        child.kill()
    psutil.wait_procs(alive, timeout=5)
    return code


@pytest.fixture
def own_gateway(gateway, tmp_path):
    """start(**env) -> a gateway of the test's own (stopped after the test) over the demo configuration;
    its usage stream, spool directory and (by default) the shared Redis are its own or given."""
    need("PostgreSQL", "postgresql" in settings.DATABASES["default"]["ENGINE"])
    need("Redis", bool(settings.REDIS_URL))
    started, gateways = [], []

    def start(**env_extra) -> Gateway:
        env = {"XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}",
               "XROUTER_SPOOL_DIR": str(tmp_path / "spool"), "XROUTER_BREAKER_FAILURES": "1000000",
               "XROUTER_BREAKER_ERROR_RATE": "2", **env_extra}
        process, base = start_gateway(env)
        started.append(process)
        gateways.append(Gateway(base, process, env, gateway.keys))
        return gateways[-1]

    yield start
    for process in started:
        stop_with_children(process)
    shared = redis_sync.Redis.from_url(settings.REDIS_URL)
    for gw in gateways:
        if "REDIS_URL" not in gw.env:
            stream = gw.env["XROUTER_USAGE_STREAM"]
            shared.delete(stream, f"{stream}:dead", f"{stream}:dead:total")


def writer_processes(process) -> list[psutil.Process]:
    """The usage writers a gateway runs (alive: not zombies)."""
    found = []
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE and any("writer" in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def spool_files(directory) -> list[str]:
    try:
        return [n for n in os.listdir(directory) if n.startswith("usage-")]
    except FileNotFoundError:
        return []
