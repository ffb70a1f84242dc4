"""Issue 8 item 18: PostgreSQL going away must not take /v1 down.

The gateway here runs against a PostgreSQL this test starts itself on a private port (the
machine's own server on 5432 is never touched), which it stops with `pg_ctl -m immediate`
while the gateway serves, and starts again.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT, demo_config, free_port, need, start_gateway, stop_gateway

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CHAT = {"model": "mts/mws-gpt-alpha", "messages": [{"role": "user", "content": "hi"}]}


class PrivatePostgres:
    """A throwaway cluster owned by the `postgres` OS user (initdb refuses root)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="xrouter-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/xrouter"
        shutil.chown(self.dir, "postgres")

    def _run(self, *argv, check=True):
        command = [str(PG_BIN / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def init(self):
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "xrouter")

    def start(self):
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self):
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)

    def sql(self, statement):
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "xrouter", "-c", statement)

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_pg():
    need("PostgreSQL 15 binaries (and runuser when root)",
         (PG_BIN / "initdb").exists() and (os.geteuid() != 0 or bool(shutil.which("runuser"))))
    pg = PrivatePostgres()
    try:
        pg.init()
        yield pg
    finally:
        pg.destroy()


def manage(env, *argv) -> str:
    result = subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_v1_survives_a_database_outage_and_recovers_without_a_restart(private_pg, emulators, tmp_path):
    env = {**os.environ, "DATABASE_URL": private_pg.url, "XROUTER_LOG_JSON": "false", "LOG_LEVEL": "warning"}
    env.pop("XROUTER_ENV", None)
    manage(env, "migrate", "--verbosity", "0")
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(demo_config(emulators)))
    manage(env, "import_config", str(config))
    key = manage(env, "create_api_key", "--user", "outage").strip().splitlines()[-1]

    # A Redis namespace of its own: bus events of other test runs (a key created elsewhere clears
    # the key cache) must not reach this gateway while its database is down.
    namespace = f"xrouter-outage-{uuid.uuid4().hex[:8]}"
    process, base = start_gateway({
        "DATABASE_URL": private_pg.url, "XROUTER_CONFIG_TTL": "1", "XROUTER_STALE_MAX": "8",
        "XROUTER_DB_CONNECT_TIMEOUT": "2", "XROUTER_REDIS_NAMESPACE": namespace,
        "XROUTER_USAGE_STREAM": f"{namespace}:usage",
    })
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=base + "/v1", headers=headers, timeout=20) as client:
            assert client.post("/chat/completions", json=CHAT).status_code == 200  # key and catalog warm

            private_pg.stop()
            stopped = time.monotonic()
            # Past the TTL the catalog cannot be reloaded: the last good one keeps serving.
            for _ in range(3):
                time.sleep(1.1)
                assert client.post("/chat/completions", json=CHAT).status_code == 200
                assert "mts/mws-gpt-alpha" in {m["id"] for m in client.get("/models").json()["data"]}

            # Past XROUTER_STALE_MAX the snapshot is too old to trust: 503 with Retry-After, never 500.
            deadline = stopped + 30
            while True:
                answer = client.post("/chat/completions", json=CHAT)
                assert answer.status_code in (200, 503), answer.text
                if answer.status_code == 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert answer.status_code == 503
            assert int(answer.headers["retry-after"]) >= 1
            assert answer.json()["error"]["code"] == "config_unavailable"

            # Back up: the same process recovers, and reads the configuration afresh.
            private_pg.start()
            private_pg.sql("UPDATE providers_providermodel SET enabled = false WHERE name = 'QwQ-32B'")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                answer = client.post("/chat/completions", json=CHAT)
                models = client.get("/models")
                if answer.status_code == 200 and "mts/QwQ-32B" not in {m["id"] for m in models.json()["data"]}:
                    break
                assert answer.status_code in (200, 503), answer.text
                time.sleep(0.5)
            else:
                pytest.fail("the gateway did not recover within 60 s of the database coming back")
            assert process.poll() is None
    finally:
        stop_gateway(process)
