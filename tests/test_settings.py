import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_check(**env):
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True)


def test_it_starts_with_no_environment_at_all():
    result = run_check()
    assert result.returncode == 0, result.stderr


def test_it_names_a_malformed_database_url():
    result = run_check(DATABASE_URL="nonsense://")
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def test_it_names_a_malformed_number():
    result = run_check(XROUTER_MAX_BODY_BYTES="lots")
    assert result.returncode != 0
    assert "XROUTER_MAX_BODY_BYTES" in result.stderr


def test_it_names_a_malformed_redis_url():
    result = run_check(REDIS_URL="http://example")
    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr
