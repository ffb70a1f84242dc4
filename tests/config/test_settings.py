"""Settings from the environment: the Redis namespace keeps deployments that share a Redis apart."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOW = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xrouter_project.settings")
django.setup()
from django.conf import settings
from apps.common import bus
from apps.gateway import cache
from apps.providers.adapters.tokens import TOKENS
print(bus.CHANNEL, settings.XROUTER["USAGE_STREAM"], cache.PREFIX, TOKENS.prefix, settings.CACHES["default"].get("KEY_PREFIX"),
      settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"], settings.CELERY_TASK_DEFAULT_QUEUE)
"""


def run(env: dict) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "REDIS_URL": "redis://127.0.0.1:6379/0"}
    return subprocess.run([sys.executable, "-c", SHOW], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60)


def test_every_redis_name_starts_with_the_namespace():
    out = run({"XROUTER_REDIS_NAMESPACE": "staging"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["staging:bus", "staging:usage", "staging:cache:", "staging:token:", "staging",
                                  "staging:asgi", "staging"]


def test_the_default_namespace_is_xrouter():
    out = run({})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:4] == ["xrouter:bus", "xrouter:usage", "xrouter:cache:", "xrouter:token:"]


def test_a_malformed_namespace_stops_the_start_naming_the_variable():
    out = run({"XROUTER_REDIS_NAMESPACE": "has space"})
    assert out.returncode != 0
    assert "XROUTER_REDIS_NAMESPACE is malformed" in out.stderr


def test_a_malformed_redis_url_stops_the_start_naming_the_variable():
    out = run({"REDIS_URL": "http://127.0.0.1:6379/0"})
    assert out.returncode != 0
    assert "REDIS_URL is malformed" in out.stderr and "redis://" in out.stderr
