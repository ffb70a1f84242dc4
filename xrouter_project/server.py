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
import time

import uvicorn
import uvicorn._subprocess

from xrouter_project.log_filters import uvicorn_log_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WriterSupervisor:
    """Runs the usage writer and restarts it (1 s, 2 s, … 30 s apart) whenever it exits before
    `stop()`: a writer that dies of a bad batch or an unreachable store must not end billing.

    No thread: this process forks uvicorn's workers, and a fork taken while another thread is inside
    `subprocess.Popen` or a `print` copies that moment into the worker — the Popen's pipe end held open
    (the Popen never returns) or the stream's lock held for good (the worker hangs on its first log line).
    Everything runs in the main thread, between uvicorn's own steps, from signal handlers: SIGCHLD
    notices that the writer exited, SIGALRM (the backoff's timer) starts the next one."""

    BACKOFF_MAX = 30.0
    HEALTHY_RUN = 60.0  # a writer that ran this long starts the backoff over

    def __init__(self, argv: list[str], env: dict):
        self.argv, self.env = argv, env
        self.process: subprocess.Popen | None = None
        self.stopping = False
        self.restarts = 0
        self.backoff = 1.0
        self.started = 0.0
        self.owner = os.getpid()  # forked workers inherit the handlers: they must do nothing there
        self.previous: dict = {}

    def start(self) -> None:
        self.previous = {sig: signal.signal(sig, handler)
                         for sig, handler in ((signal.SIGCHLD, self._exited), (signal.SIGALRM, self._due))}
        # Forked workers inherit the handlers: give them back the defaults there.
        os.register_at_fork(after_in_child=self._forget)
        self._spawn()

    def _forget(self) -> None:
        if os.getpid() != self.owner:
            for sig, handler in self.previous.items():
                signal.signal(sig, handler)

    def _spawn(self) -> None:
        """Start a writer; one that cannot start (the interpreter gone in a deploy, no file descriptors left)
        is retried on the backoff. Never raises: this runs in a signal handler, inside uvicorn's loop."""
        self.started = time.monotonic()
        try:
            self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env)  # nosec B603 # our own argv, no shell
        except Exception as exc:  # noqa: BLE001 # any failure to start is retried, never raised into uvicorn
            self._retry(f"usage writer could not start ({type(exc).__name__}: {exc})")
            return
        self._exited()  # an exit before `process` was set raised its SIGCHLD too early to be seen

    def _exited(self, *_) -> None:
        process = self.process
        if os.getpid() != self.owner or self.stopping or process is None or process.poll() is None:
            return  # a worker's process, or the writer still runs
        self.process = None
        if time.monotonic() - self.started > self.HEALTHY_RUN:
            self.backoff = 1.0
        self._retry(f"usage writer exited with {process.returncode}")

    def _retry(self, why: str) -> None:
        delay = self.backoff
        signal.setitimer(signal.ITIMER_REAL, delay)
        self.backoff = min(self.backoff * 2, self.BACKOFF_MAX)
        try:  # os.write, not print: a signal handler that lands inside a print would re-enter its buffer
            os.write(2, f"{why}; restarting it in {delay:.0f} s\n".encode())
        except OSError:
            pass  # stderr closed or full: the restart is armed all the same

    def _due(self, *_) -> None:
        if os.getpid() == self.owner and not self.stopping and self.process is None:
            self.restarts += 1
            self._spawn()

    def stop(self, timeout: float = 10) -> None:
        """Stop for good (after the workers flushed: the writer drains what they left, then exits).
        What it has not written by then stays in the Redis stream for the next writer."""
        self.stopping = True
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
    # worker starts as clean as a spawned one (and no thread runs here to be caught mid-step by a fork).
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
