"""The official openai Node.js SDK (tests/node, pinned in package-lock.json) against the gateway:
chat and streaming, and the Responses API (create and the stream helper), once per provider, through
tests/node/check.mjs."""

import json
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

from .support import CHAT_IDS, CHAT_MODELS, assert_no_secrets

NODE_DIR = ROOT / "tests" / "node"


@pytest.fixture(scope="module")
def node_sdk():
    """The node binary, with the SDK installed (`npm ci` when node_modules is missing)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required for the Node.js SDK check (Node.js 20 is on the machine)")
    if not (NODE_DIR / "node_modules" / "openai" / "package.json").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True, timeout=300)
    return node


def _check(node, gateway, key, model) -> subprocess.CompletedProcess:
    return subprocess.run([node, "check.mjs", gateway.v1, key, model], cwd=NODE_DIR, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_the_node_sdk_chats_and_streams(node_sdk, gateway, provider, model):
    run = _check(node_sdk, gateway, gateway.keys["alice"], model)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])

    assert result["chat"] == "Echo: hello from node"
    assert result["streamed"] == "Echo: stream from node"
    assert result["finish"] == "stop"
    usage = result["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert result["response"] == "Echo: respond from node"
    assert result["responseUsage"]["total_tokens"] == result["responseUsage"]["input_tokens"] + result["responseUsage"]["output_tokens"]
    assert result["responseStreamed"] == result["responseFinal"] == "Echo: respond in a stream"
    assert result["responseStatus"] == "completed"


def test_the_node_sdk_sees_an_authentication_error_for_a_wrong_key(node_sdk, gateway):
    run = _check(node_sdk, gateway, "xr-not-a-real-key-at-all", "gigachat/GigaChat-2-Max")
    assert run.returncode != 0
    assert "401" in run.stderr
    assert_no_secrets(run.stderr)


def test_the_node_sdk_sees_charlie_refused_a_model_outside_his_key(node_sdk, gateway):
    run = _check(node_sdk, gateway, gateway.keys["charlie"], "gigachat/GigaChat-2-Max")
    assert run.returncode != 0
    assert "403" in run.stderr
