"""Helpers of the key tests: gateway processes of our own, polling, a database made unreachable."""

import contextlib
import time

import httpx
import psutil

from tests.conftest import free_port, start_gateway, stop_gateway


def stop_with_children(process) -> None:
    """stop_gateway, then whatever the server started (its usage writer)."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    stop_gateway(process)
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        child.terminate()
    psutil.wait_procs(alive, timeout=10)


@contextlib.contextmanager
def gateway_process(**env):
    import uuid

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
