"""The Dockerfile, without a Docker engine: hadolint passes, and its CMD, run here with the final
stage's ENV, serves the gateway and shuts down gracefully on SIGTERM (streams finish, usage flushed)."""

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid

import httpx
import psutil
import pytest

from apps.emulators.behaviour import LONG_ANSWER
from tests.conftest import ROOT, _database_url, free_port, wait_for_usage

from .support import LONG_PROMPT

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    parsed = [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]
    last_from = max(i for i, (op, _) in enumerate(parsed) if op == "FROM")
    return parsed[last_from:]


def cmd() -> list[str]:
    args = [a for op, a in instructions() if op == "CMD"][-1]
    assert args.startswith("["), "CMD should use the exec form, so SIGTERM reaches the server"
    return json.loads(args)


def image_env() -> dict[str, str]:
    env = {}
    for op, args in instructions():
        if op == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_hadolint_passes_on_the_dockerfile():
    hadolint = ROOT / ".venv" / "bin" / "hadolint"
    if not hadolint.exists():
        hadolint = os.path.join(os.path.dirname(sys.executable), "hadolint")
    run = subprocess.run([str(hadolint), str(DOCKERFILE)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck():
    ops = instructions()
    users = [a for op, a in ops if op == "USER"]
    assert users and users[-1] not in ("root", "0"), "the final stage runs unprivileged"
    assert any(op == "HEALTHCHECK" for op, _ in ops)
    all_from = [line for line in DOCKERFILE.read_text().splitlines() if line.upper().startswith("FROM ")]
    assert len(all_from) >= 2, "multi-stage"


@pytest.fixture(params=["image", "1"], ids=["workers-as-in-the-image", "one-worker"])
def image_process(request, gateway, emulators):
    """The Dockerfile's CMD, run from the source tree with the image's ENV and our test database;
    also with XROUTER_WORKERS=1 (a common override, and uvicorn's single-process mode)."""
    port = free_port()
    env = {**os.environ, **{k: v for k, v in image_env().items() if k != "PATH"}}
    if request.param != "image":
        env["XROUTER_WORKERS"] = request.param
    env.update({
        "XROUTER_PORT": str(port),
        "XROUTER_HOST": "127.0.0.1",  # the image binds 0.0.0.0; loopback is enough here
        "DATABASE_URL": _database_url(),
        "XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}",
        "XROUTER_LOG_JSON": "false",
        "LOG_LEVEL": "warning",
    })
    argv = cmd()
    if argv[0] in ("python", "python3"):
        argv = [sys.executable, *argv[1:]]  # the image's PATH puts its venv python first
    process = subprocess.Popen(argv, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, f"the CMD exited with {process.returncode}"
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the CMD did not serve /healthz within 30 s"
        time.sleep(0.1)
    children = psutil.Process(process.pid).children(recursive=True)
    yield process, base, children
    if process.poll() is None:
        process.kill()
        process.wait(10)
    for child in children:  # whatever the server failed to stop (the test reports it)
        if child.is_running():
            child.terminate()
    psutil.wait_procs(children, timeout=10)


def test_the_dockerfile_cmd_drains_a_stream_and_exits_0_on_sigterm(image_process, gateway, emulator_control, django_db_blocker):
    process, base, children = image_process
    emulator_control("gigachat", chunk_delay_ms=100)  # 40 chunks: about 4 s
    first_chunk = threading.Event()
    result: dict = {}

    def consume():
        try:
            with httpx.stream("POST", base + "/v1/chat/completions", timeout=60,
                              headers={"Authorization": f"Bearer {gateway.keys['alice']}"},
                              json={"model": "gigachat/GigaChat-2-Max", "stream": True,
                                    "messages": [{"role": "user", "content": LONG_PROMPT}]}) as response:
                result["request_id"] = response.headers.get("x-request-id")
                events = []
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        events.append(line[6:])
                        first_chunk.set()
                result["events"] = events
        except Exception as exc:  # reported by the assertions below
            result["error"] = exc
        finally:
            first_chunk.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert first_chunk.wait(15), "the stream did not start"
    assert "error" not in result, result.get("error")
    process.send_signal(signal.SIGTERM)

    # While it drains, the server takes no new work (uvicorn's supervisor passes the signal on
    # to its workers within half a second).
    refused, deadline = False, time.monotonic() + 2.5
    while not refused and time.monotonic() < deadline:
        try:
            httpx.get(base + "/healthz", timeout=0.5)
            time.sleep(0.1)
        except httpx.HTTPError:
            refused = True
    assert refused, "the server still answered new requests after SIGTERM"
    assert consumer.is_alive(), "the open stream was still being served while new work was refused"

    consumer.join(30)
    assert not consumer.is_alive()
    assert "error" not in result, f"the open stream broke on SIGTERM: {result.get('error')!r}"
    events = result["events"]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert not any("error" in c for c in chunks), chunks[-1]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")) == LONG_ANSWER

    record = wait_for_usage(django_db_blocker, result["request_id"])
    assert record.status == "ok" and record.completion_tokens > 0, "the drained stream's usage was flushed"

    returncode = process.wait(30)
    _, alive = psutil.wait_procs(children, timeout=5)
    leftovers = [" ".join(p.cmdline()[-2:]) for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert (returncode, leftovers) == (0, []), (
        f"a graceful shutdown exits 0 (got {returncode}) and leaves no process it started running (left {leftovers})"
    )
