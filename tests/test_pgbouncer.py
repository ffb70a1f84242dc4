"""PostgreSQL behind PgBouncer in transaction mode (issue: operations, "Scaling out"): a gateway, its usage
writer and the management API run through a PgBouncer this test starts on a private port (Debian's
pgbouncer, as the postgres user: it refuses root), and every request is billed. Nothing may rely on session
state: no server-side prepared statements, no cursor outliving its transaction."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from django.conf import settings

from tests.conftest import _database_url, free_port, need, start_gateway, stop_gateway


@pytest.fixture(scope="module")
def pgbouncer():
    need("PostgreSQL", settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql")
    need("pgbouncer", shutil.which("pgbouncer") is not None or Path("/usr/sbin/pgbouncer").exists())
    database = urlsplit(_database_url())
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="xr-pgbouncer-", dir="/tmp"))
    folder.chmod(0o755)
    (folder / "users.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""[databases]
* = host={database.hostname} port={database.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = 4
; Server connections live a second: a client that relied on session state (a prepared statement, a cursor)
; finds it gone on its next transaction, as it would under load on a busy pool.
server_lifetime = 1
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,options
logfile = {folder}/pgbouncer.log
""")
    for path in folder.iterdir():
        path.chmod(0o644)
    shutil.chown(folder, "postgres")
    process = subprocess.Popen(["runuser", "-u", "postgres", "--", shutil.which("pgbouncer") or "/usr/sbin/pgbouncer",
                                str(folder / "pgbouncer.ini")], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = database._replace(netloc=f"{database.username or 'postgres'}@127.0.0.1:{port}").geturl()
    deadline = time.monotonic() + 15
    import psycopg

    while True:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            break
        except psycopg.OperationalError:
            assert process.poll() is None and time.monotonic() < deadline, (folder / "pgbouncer.log").read_text()
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_gateway_and_its_writer_behind_pgbouncer_in_transaction_mode_bill_every_request(
        pgbouncer, gateway, django_db_blocker):
    from apps.usage.models import UsageRecord

    env = {**gateway.env, "DATABASE_URL": pgbouncer, "XROUTER_PGBOUNCER": "true",
           "XROUTER_USAGE_STREAM": gateway.env["XROUTER_USAGE_STREAM"] + ":pgbouncer"}
    process, base = start_gateway(env)
    try:
        headers = {"authorization": f"Bearer {gateway.keys['alice']}"}
        ids = []
        # One request per writer batch, more batches than psycopg's prepare threshold (5): a prepared
        # statement would be looked up on another server connection and fail.
        for _ in range(10):
            response = httpx.post(base + "/v1/chat/completions", headers=headers, timeout=30,
                                  json={"model": "mts/mws-gpt-alpha", "messages": [{"role": "user", "content": "hi"}]})
            assert response.status_code == 200, response.text
            ids.append(response.headers["x-request-id"])
            time.sleep(0.3)
        listed = httpx.get(base + "/api/v1/usage/", headers=headers, timeout=30)  # the management API, through it too
        assert listed.status_code in (200, 403), listed.text
        deadline = time.monotonic() + 20
        while True:
            with django_db_blocker.unblock():
                stored = UsageRecord.objects.filter(request_id__in=ids).count()
            if stored == len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert stored == len(ids)
        assert process.poll() is None
    finally:
        stop_gateway(process)
    assert os.environ.get("XROUTER_PGBOUNCER") is None  # the test's own settings stay as they were
