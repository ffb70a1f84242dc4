"""The battery's own PostgreSQL cluster and Redis: on private ports, in a temporary directory, so they can be
killed, frozen and restarted. The machine's 5432 and 6379 are never touched."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
HOST = "127.0.0.1"


def _as_postgres(argv: list[str], timeout: float = 120) -> None:
    # initdb and postgres refuse to run as root: the cluster belongs to the `postgres` user.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    out = subprocess.run(prefix + argv, capture_output=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} failed: {out.stderr.decode(errors='replace')[-1500:]}")


class Postgres:
    """`initdb` into `<root>/pg`, served on `port` (loopback only); `stop(immediate=True)` is a crash."""

    def __init__(self, root: Path, port: int):
        self.dir = root / "pg"
        self.port = port
        self.log = root / "pg.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@{HOST}:{self.port}/{database}"

    def init(self) -> None:
        self.dir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir.parent, "postgres")
            shutil.chown(self.dir, "postgres")
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.dir), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                      "--no-sync"])
        with open(self.dir / "postgresql.conf", "a") as conf:
            # fsync off: the battery crashes the server (pg_ctl -m immediate), never the machine, and the
            # kernel's page cache survives a crashed server; a machine shared with other runs stays usable.
            conf.write(f"port = {self.port}\nlisten_addresses = '{HOST}'\nunix_socket_directories = '{self.dir}'\n"
                       "fsync = off\nmax_connections = 300\nshared_buffers = 64MB\n")

    def start(self) -> None:
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-l", str(self.log), "-w", "-t", "60", "start"])

    def stop(self, immediate: bool = False) -> None:
        mode = "immediate" if immediate else "fast"
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-m", mode, "-w", "-t", "60", "stop"])

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def destroy(self) -> None:
        try:
            self.stop(immediate=True)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass


class Redis:
    """redis-server with the stream persisted as production must (appendonly, fsync on every write)."""

    def __init__(self, root: Path, port: int):
        self.dir = root / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        log = open(self.dir.parent / "redis.log", "ab")
        self.process = subprocess.Popen(
            ["redis-server", "--bind", HOST, "--port", str(self.port), "--dir", str(self.dir), "--appendonly", "yes",
             "--appendfsync", "always", "--save", "", "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """kill -9: what a crash loses is only what appendfsync=always had not written (nothing)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def destroy(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.kill()
