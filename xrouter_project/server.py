"""The production process tree, started by `manage.py serve` through exec so that the
supervising process never loads Django (it only forks workers and watches them):

    python -m xrouter_project.server --host H --port P --workers N --grace S --ws-max-size B [--writer]

uvicorn (uvloop + httptools) runs the ASGI app in N worker processes; with --writer, the usage
writer runs beside them and is stopped after the workers have flushed their usage.
"""

import argparse
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import uvicorn
import uvicorn._subprocess

from xrouter_project.log_filters import uvicorn_log_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# A worker forked (os.fork, by multiprocessing's fork context) while this process's writer thread is inside
# subprocess.Popen inherits the write end of Popen's exec-status pipe: Popen then waits for that pipe's EOF
# until the worker exits, the writer thread never gets to wait() for its child, and a writer that dies is
# never restarted (the battery's quick run caught it: writer killed, no restart, 700 usage rows missing).
# The lock keeps forks and Popen apart.
_spawning = threading.Lock()
os.register_at_fork(before=_spawning.acquire, after_in_parent=_spawning.release,
                    after_in_child=lambda: _spawning.release() if _spawning.locked() else None)


class WriterSupervisor(threading.Thread):
    """Runs the usage writer and restarts it (1 s, 2 s, … 30 s apart) whenever it exits before
    `stop()`: a writer that dies of a bad batch or an unreachable store must not end billing."""

    BACKOFF_MAX = 30.0
    HEALTHY_RUN = 60.0  # a writer that ran this long starts the backoff over

    def __init__(self, argv: list[str], env: dict):
        super().__init__(name="usage-writer-supervisor", daemon=True)
        self.argv, self.env = argv, env
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    def run(self) -> None:
        backoff = 1.0
        while True:
            with self.lock:
                if self.stopping.is_set():
                    return
                with _spawning:  # no worker is forked meanwhile (see _spawning)
                    self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env)  # nosec B603 # our own argv, no shell
            started = time.monotonic()
            code = self.process.wait()
            if self.stopping.is_set():
                return
            if time.monotonic() - started > self.HEALTHY_RUN:
                backoff = 1.0
            print(f"usage writer exited with {code}; restarting it in {backoff:.0f} s", file=sys.stderr, flush=True)
            if self.stopping.wait(backoff):
                return
            backoff = min(backoff * 2, self.BACKOFF_MAX)
            self.restarts += 1

    def stop(self, timeout: float = 10) -> None:
        """Stop for good (after the workers flushed: the writer drains what they left, then exits).
        What it has not written by then stays in the Redis stream for the next writer."""
        with self.lock:
            self.stopping.set()
            process = self.process
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="xrouter_project.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--ws-max-size", type=int, default=4 * 1024 * 1024, help="largest WebSocket frame (XROUTER_MAX_BODY_BYTES)")
    parser.add_argument("--writer", action="store_true", help="run the usage writer beside the workers")
    args = parser.parse_args(argv)

    # uvicorn re-raises the signal that stopped it once it has shut down; by then the shutdown was
    # graceful, so let that re-raise land here and exit 0 (what orchestrators read as a clean stop).
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    # Two malloc arenas are plenty for one event loop and a small thread pool; glibc's default
    # (8 per core) leaves a few MiB of touched arena per thread in each worker.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    metrics_dir = _metrics_dir()
    writer = None
    if args.writer:
        # The writer loads only the usage app (XROUTER_ROLE=writer): a fraction of a worker's memory.
        env = {**os.environ, "XROUTER_ROLE": "writer"}
        if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
            command = ["-m", "apps.usage.lean_writer"]  # no Django in it: a third of the memory
        else:
            command = ["manage.py", "usage_writer"]
        writer = WriterSupervisor([sys.executable, *command, "--exit-with-parent"], env)
        writer.start()
    # Workers are forked, not spawned: spawning starts multiprocessing's resource-tracker process (≈ 12 MiB
    # resident, README "Performance") for semaphores and shared memory that uvicorn's supervisor never uses
    # (it talks to its workers over pipes). This process imports no Django and no event loop, so a forked
    # worker starts as clean as a spawned one; the writer thread above only waits on its child.
    uvicorn._subprocess.spawn = multiprocessing.get_context("fork")
    try:
        uvicorn.run(
            "xrouter_project.asgi:application",
            host=args.host,
            port=args.port,
            workers=args.workers if args.workers > 1 else None,
            loop="uvloop",
            http="httptools",
            # SIGTERM drains open WebSocket streams like HTTP ones (ws_protocol.py).
            ws="xrouter_project.ws_protocol:DrainingWebSocketProtocol",
            # A frame is a request body: the same cap. uvicorn's defaults (16 MiB × 32 queued frames)
            # let one socket hold 512 MiB; a client has one request in flight, 4 frames are plenty.
            ws_max_size=args.ws_max_size,
            ws_max_queue=4,
            lifespan="on",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            backlog=4096,
            # SIGTERM: stop accepting, let open streams finish up to this deadline, then flush usage.
            timeout_graceful_shutdown=int(args.grace),
            timeout_keep_alive=30,
            log_level=args.log_level,
            log_config=uvicorn_log_config(),  # no query string in its lines (log_filters.py)
        )
    finally:
        if writer is not None:
            writer.stop()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _metrics_dir() -> str | None:
    """prometheus_client's multiprocess mode (apps/common/metrics.py): the workers and the writer keep
    their series in files under one directory, which must start empty. An operator's
    PROMETHEUS_MULTIPROC_DIR is emptied and kept; otherwise a private one is made and removed at exit
    (returned)."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):
            if name.endswith(".db"):
                os.unlink(os.path.join(given, name))
        return None
    made = tempfile.mkdtemp(prefix="xrouter-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made


if __name__ == "__main__":
    sys.exit(main())
