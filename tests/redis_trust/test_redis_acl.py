"""The documented Redis users (deploy/redis/users.acl, README "Redis users and ACLs") on a Redis of the test's own:
the served gateway, the lean usage writer and a Celery worker with beat each run under their own user; a request
is billed; a user without write access to the usage stream cannot add to it (NOPERM); an entry added by a user who
may write but lacks the HMAC key is refused by the writer; and Redis denied nothing the three needed (ACL LOG)."""

import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest
import redis
from django.conf import settings

from apps.usage import deadletter
from apps.usage.models import UsageRecord
from tests.conftest import ROOT, _database_url, free_port, need, start_gateway, wait_for_usage
from tests.usage.conftest import stop_with_children

PASSWORDS = {"gateway": "gateway-pw-" + uuid.uuid4().hex, "writer": "writer-pw-" + uuid.uuid4().hex,
             "celery": "celery-pw-" + uuid.uuid4().hex, "admin": "admin-pw-" + uuid.uuid4().hex}


class AclRedis:
    """A redis-server on a free loopback port loading the documented ACL file for `namespace`, plus an
    `admin` user of the test's own (to look and to read ACL LOG); the default user is off."""

    def __init__(self, tmp_path, namespace: str):
        self.port = free_port()
        text = (ROOT / "deploy" / "redis" / "users.acl").read_text().replace("xrouter", namespace)
        for user in ("gateway", "writer", "celery"):
            text = text.replace(f">CHANGE-ME-{user}", f">{PASSWORDS[user]}")
        acl = tmp_path / "users.acl"
        acl.write_text(text + f"user admin on >{PASSWORDS['admin']} ~* &* +@all\n")
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", "--aclfile", str(acl), "--loglevel", "warning"],
                                        stdout=subprocess.DEVNULL)
        admin = self.client("admin")
        deadline = time.monotonic() + 10
        while True:
            try:
                admin.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and self.process.poll() is None, "redis-server did not start"
                time.sleep(0.05)

    def url(self, user: str) -> str:
        return f"redis://{user}:{PASSWORDS[user]}@127.0.0.1:{self.port}/0"

    def client(self, user: str) -> redis.Redis:
        return redis.Redis.from_url(self.url(user), socket_timeout=5)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def acl_redis(tmp_path):
    if not __import__("shutil").which("redis-server"):
        need("redis-server", False)
    namespace = f"xracl{uuid.uuid4().hex[:8]}"
    server = AclRedis(tmp_path, namespace)
    server.namespace = namespace
    yield server
    server.stop()


def test_gateway_writer_and_celery_run_under_their_own_redis_users(acl_redis, gateway, django_db_blocker, tmp_path):
    need("PostgreSQL", "postgresql" in settings.DATABASES["default"]["ENGINE"])
    namespace, stream = acl_redis.namespace, f"{acl_redis.namespace}:usage"
    base_env = {"XROUTER_REDIS_NAMESPACE": namespace, "XROUTER_USAGE_STREAM": stream,
                "XROUTER_SPOOL_DIR": str(tmp_path / "spool"), "DATABASE_URL": _database_url()}
    admin = acl_redis.client("admin")
    admin.acl_log_reset()
    started = []
    try:
        writer = subprocess.Popen([sys.executable, "-m", "apps.usage.lean_writer"], cwd=ROOT,
                                  env={**os.environ, **base_env, "REDIS_URL": acl_redis.url("writer")})
        started.append(writer)
        celery = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "xrouter_project", "worker", "-B", "--pool", "solo", "--loglevel",
             "warning", "--schedule", str(tmp_path / "beat-schedule")], cwd=ROOT,
            env={**os.environ, **base_env, "REDIS_URL": acl_redis.url("celery")})
        started.append(celery)
        process, base = start_gateway({**base_env, "REDIS_URL": acl_redis.url("gateway")}, args=("--no-writer",))
        started.append(process)

        # A request is billed: gateway → signed stream entry → writer → PostgreSQL.
        headers = {"Authorization": f"Bearer {gateway.keys['alice']}"}
        r = httpx.post(f"{base}/v1/chat/completions", headers=headers, timeout=30,
                       json={"model": "tbank/t-tech/T-pro-it-2.0", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200, r.text
        row = wait_for_usage(django_db_blocker, r.headers["x-request-id"], timeout=20)
        assert row.status == "ok" and row.provider == "tbank"

        # Celery worked under its user: beat's heartbeat, which the gateway reads for /readyz.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = httpx.get(f"{base}/readyz", timeout=10).json()
            if ready["redis"]["beat"]["seen"]:
                break
            time.sleep(0.5)
        assert ready["redis"]["beat"]["seen"] and ready["redis"]["ok"], ready
        assert ready["usage"]["running"] is True, ready  # the writer, seen by the gateway through XINFO

        # Without write access to the usage stream (Celery's user), nothing can be added to it.
        forged_id = f"acl-forged-{uuid.uuid4().hex[:8]}"
        record = b'[{"request_id": "%s", "provider": "tbank", "model": "m", "prompt_tokens": 1000000, "ts": 1}]' % forged_id.encode()
        with pytest.raises(redis.exceptions.NoPermissionError):
            acl_redis.client("celery").xadd(stream, {"b": record})
        # The gateway's user may append, but may not read, delete or trim entries, nor touch the writer's set.
        gateway_redis = acl_redis.client("gateway")
        for forbidden in (lambda: gateway_redis.xrange(stream), lambda: gateway_redis.xdel(stream, "1-1"),
                          lambda: gateway_redis.xtrim(stream, maxlen=0), lambda: gateway_redis.delete(stream),
                          lambda: gateway_redis.zadd(f"{stream}:lost", {record: 0}),
                          lambda: gateway_redis.xadd(f"{stream}:dead", {"r": record})):
            with pytest.raises(redis.exceptions.NoPermissionError):
                forbidden()
        # A user who may write but has no HMAC key: the writer refuses the entry (dead letter, never billed).
        gateway_redis.xadd(stream, {"b": record})
        deadline = time.monotonic() + 20
        while not admin.xlen(deadletter.dead_stream(stream)) and time.monotonic() < deadline:
            time.sleep(0.1)
        (_, fields), = admin.xrange(deadletter.dead_stream(stream))
        assert fields[b"error"].decode() == deadletter.UNSIGNED_ERROR and forged_id.encode() in fields[b"r"]
        with django_db_blocker.unblock():
            assert not UsageRecord.objects.filter(request_id=forged_id).exists()

        # Redis refused nothing the three processes needed: every denial in its log is one this test provoked.
        log = admin.acl_log(count=500)
        provoked = {("celery", stream), ("gateway", stream), ("gateway", f"{stream}:lost"), ("gateway", f"{stream}:dead")}
        unexpected = [(e["username"], e["reason"], e["object"]) for e in log if (e["username"], e["object"]) not in provoked]
        assert unexpected == []
    finally:
        for process in reversed(started):
            stop_with_children(process)
