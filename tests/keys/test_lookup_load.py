"""Issue 8 item 5, the proof: a storm of unknown (well-formed) keys does not take database connections,
and a valid client keeps being served meanwhile."""

import shutil
import subprocess
import threading
import time

import httpx
from django.conf import settings
from django.db import connection

from tests.conftest import need

from .support import gateway_process

WRK_SECONDS = 30  # the figure

# Every request carries a fresh, well-formed random key, so no shape check can refuse it and
# no negative cache entry can answer it: each one is a real miss.
RANDOM_KEYS_LUA = r"""
local counter = 1
local hex = "0123456789abcdef"
local urlsafe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  math.randomseed(os.time() * 1000 + id)
end
local function pick(alphabet, n)
  local out = {}
  for i = 1, n do
    local j = math.random(1, #alphabet)
    out[i] = alphabet:sub(j, j)
  end
  return table.concat(out)
end
function request()
  local key = "xr-" .. pick(hex, 8) .. "-" .. pick(urlsafe, 43)
  return wrk.format("GET", "/v1/models", {["Authorization"] = "Bearer " .. key})
end
"""


def connections_to_test_db() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_random_well_formed_keys_for_30s_take_no_connections_and_a_valid_client_is_served(
    gateway, django_db_blocker, tmp_path
):
    need("PostgreSQL", "postgresql" in settings.DATABASES["default"]["ENGINE"])
    wrk = shutil.which("wrk")
    assert wrk, "wrk is required for this test"
    script = tmp_path / "random_keys.lua"
    script.write_text(RANDOM_KEYS_LUA)
    valid = gateway.keys["alice"]

    with gateway_process() as base, django_db_blocker.unblock():
        warm = httpx.get(base + "/v1/models", headers={"authorization": f"Bearer {valid}"}, timeout=10)
        assert warm.status_code == 200
        time.sleep(0.5)
        before = connections_to_test_db()

        statuses: list[int] = []
        stop = threading.Event()

        def valid_client():
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    try:
                        statuses.append(client.get(base + "/v1/models", headers={"authorization": f"Bearer {valid}"}).status_code)
                    except httpx.HTTPError as exc:
                        statuses.append(repr(exc))
                    time.sleep(0.05)

        thread = threading.Thread(target=valid_client, daemon=True)
        thread.start()
        load = subprocess.Popen([wrk, "-t2", "-c32", f"-d{WRK_SECONDS}s", "--timeout", "10s", "-s", str(script), base + "/"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        peak = before
        while load.poll() is None:
            peak = max(peak, connections_to_test_db())
            time.sleep(0.25)
        report = load.stdout.read()
        stop.set()
        thread.join(timeout=15)

    print(f"connections before {before}, peak {peak}; valid client answered {len(statuses)} times\n{report}")
    assert load.returncode == 0, report
    assert "Requests/sec" in report, report
    assert peak <= before + 2, f"{before} connections before, {peak} during the storm\n{report}"
    assert len(statuses) >= 50, statuses  # it kept being answered for the whole run (hang guard: 10 s each)
    assert set(statuses) == {200}, [s for s in statuses if s != 200][:10]
