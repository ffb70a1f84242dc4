"""Helpers of the key tests: gateway processes of our own, polling, a database made unreachable."""

import contextlib
import socket
import threading
import time
import uuid

import httpx

from tests.conftest import free_port, start_gateway
from tests.gateway.conftest import _stop_with_children as stop_with_children


@contextlib.contextmanager
def gateway_process(**env):
    process, base = start_gateway({"XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}", **env})
    try:
        yield base
    finally:
        stop_with_children(process)


def status_within(fn, wanted: int, timeout: float) -> tuple[int, float]:
    """Poll fn() (an HTTP status) until it gives `wanted` or `timeout` passes; (last status, seconds taken)."""
    started = time.monotonic()
    while True:
        status = fn()
        elapsed = time.monotonic() - started
        if status == wanted or elapsed > timeout:
            return status, elapsed
        time.sleep(0.05)


def models_status(base: str, plaintext: str) -> int:
    return httpx.get(base + "/v1/models", headers={"authorization": f"Bearer {plaintext}"}, timeout=10).status_code


@contextlib.contextmanager
def database_unreachable():
    """New connections (every lookup thread opens one) go to a closed port: a real connect failure."""
    from django.db import connections

    settings_dict = connections.settings["default"]
    saved = {k: settings_dict.get(k) for k in ("HOST", "PORT", "NAME")}
    settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))
    if "sqlite" in settings_dict["ENGINE"]:
        settings_dict["NAME"] = "/nonexistent/dir/db.sqlite3"
    try:
        yield
    finally:
        settings_dict.update(saved)


class TcpProxy:
    """A loopback TCP relay in front of a real server, to take it away from a gateway and give it back:
    `cut()` closes the listener and every relayed connection (connects are then refused), `restore()` reopens."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = free_port()
        self._listener = None
        self._conns: set = set()
        self._lock = threading.Lock()

    def restore(self) -> "TcpProxy":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it
            except OSError:
                pass
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass
