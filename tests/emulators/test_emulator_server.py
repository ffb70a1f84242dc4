"""Starting and stopping the emulators: the thread helper and ``manage.py run_emulators``."""

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from apps.emulators.server import EmulatorThread

ROOT = Path(__file__).resolve().parents[2]


def test_thread_serves_a_subset_and_stops_cleanly():
    thread = EmulatorThread(ports={"mts": 0, "tbank": 0}).start()
    try:
        assert set(thread.emulators) == {"mts", "tbank"}
        assert thread["mts"].base_url == f"http://127.0.0.1:{thread['mts'].port}/v1"
        assert thread["tbank"].auth_url is None
        assert httpx.get(thread["tbank"].origin + "/health").status_code == 200
    finally:
        thread.stop()
    try:
        httpx.get(thread["tbank"].origin + "/health", timeout=1)
        raise AssertionError("still serving after stop()")
    except httpx.ConnectError:
        pass


def test_base_and_auth_urls(running_emulators):
    origin = running_emulators["gigachat"].origin
    assert running_emulators["gigachat"].base_url == origin + "/api/v1"
    assert running_emulators["gigachat"].auth_url == origin + "/api/v2/oauth"
    yandex = running_emulators["yandexgpt"]
    assert (yandex.base_url, yandex.auth_url) == (yandex.origin, yandex.origin + "/iam/v1/tokens")


def test_run_emulators_command_serves_until_sigterm():
    ports = ["--gigachat-port", "0", "--yandexgpt-port", "0", "--mts-port", "0", "--tbank-port", "0"]
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_emulators", *ports],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        urls = {}
        while len(urls) < 4:
            line = process.stdout.readline()
            assert line, process.stderr.read()
            match = re.match(r"(\w+)\s+base_url=(\S+)", line)
            if match:
                urls[match[1]] = match[2]
        assert httpx.get(urls["tbank"].removesuffix("/v1") + "/health", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
