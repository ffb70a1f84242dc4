"""Issue 12, hardening: planted canary secrets — a provider key, a provider's header-borne secret, a full API key,
an OAuth access token — never appear in what XRouter shows or sends anywhere: its log (at DEBUG), its answers
(successes and errors of /v1 and the management API), the admin's and the portal's pages, /metrics, error reports
(a Sentry stand-in, tests/receiver.py), or what it keeps in Redis (usage stream, queued Celery tasks, sessions,
caches). Celery stores no task results (no result backend is configured: asserted below)."""

import json
import re
import secrets
import uuid

import httpx
import pytest
import redis
from django.conf import settings
from django.db import connections

from apps.emulators.control import EmulatorControl
from tests.conftest import start_gateway, stop_gateway
from tests.receiver import Receiver

SECRET = secrets.token_hex(6)
CANARY_PROVIDER_KEY = f"sk-canaryprov-{SECRET}"
CANARY_HEADER = f"canaryhdr-{SECRET}"


@pytest.fixture(scope="module")
def planted(gateway, emulators, django_db_blocker):
    """A provider of our own on the MTS emulator (its key and an extra header are canaries), a staff member
    with a full API key, and an OAuth token of an application of theirs."""
    from apps.accounts.models import Membership, Organisation, User
    from apps.accounts.services import membership_add
    from apps.keys.services import key_create
    from apps.oauth.services import application_create
    from apps.providers.models import Credential, Provider, ProviderModel
    from tests.oauth.test_api import oauth_token

    control = EmulatorControl(emulators["mts"].origin)
    accepted = control.config()["api_keys"]
    control.configure(api_keys=[*accepted, CANARY_PROVIDER_KEY])
    tag = uuid.uuid4().hex[:6]
    with django_db_blocker.unblock():
        provider = Provider.objects.create(name=f"canary-{tag}", kind="mts", base_url=emulators["mts"].origin + "/v1",
                                           extra_headers={"X-Canary": CANARY_HEADER})
        credential = Credential.objects.create(provider=provider, secrets={"api_key": CANARY_PROVIDER_KEY})
        ProviderModel.objects.create(provider=provider, name="mws-gpt-alpha", input_price=1, output_price=1)
        organisation = Organisation.objects.create(name=f"canary-{tag}")
        user = User.objects.create_superuser(f"canary-{tag}", f"canary-{tag}@example.com", "correct horse battery")
        membership_add(organisation, user, Membership.Role.OWNER)
        _, api_key = key_create(user=user, organisation=organisation, name="canary",
                                scopes=["chat", "embeddings", "models:read", "usage:read", "keys:manage"])
        application = application_create(user=user, organisation=organisation, name="canary app", client_type="public",
                                         redirect_uris="https://app.example/callback")[0]
        token = oauth_token(application, user, "chat models:read usage:read")
    connections.close_all()
    yield {"provider": provider, "credential": credential, "model": f"{provider.name}/mws-gpt-alpha", "user": user, "api_key": api_key,
           "token": token, "control": control}
    control.configure(api_keys=accepted)
    control.close()


@pytest.fixture(scope="module")
def observed(planted, tmp_path_factory):
    """A gateway logging at DEBUG with Sentry on, driven through every surface; everything it said, collected."""
    sentry = Receiver(reply=b'{"id": "0"}', content_type="application/json")
    log_path = tmp_path_factory.mktemp("canary") / "gateway.log"
    stream = f"{settings.REDIS_NAMESPACE}:usage:canary-{uuid.uuid4().hex[:8]}"
    with open(log_path, "wb") as log:
        process, base = start_gateway({"LOG_LEVEL": "DEBUG", "XROUTER_LOG_JSON": "true", "XROUTER_USAGE_STREAM": stream,
                                       "SENTRY_DSN": f"http://publickey@127.0.0.1:{sentry.port}/42"}, log=log)
        try:
            answers = drive(base, planted)
        finally:
            stop_gateway(process)
    yield {"log": log_path.read_text(errors="replace"), "answers": answers, "sentry": sentry.requests,
           "redis": redis_text(stream)}
    sentry.close()


def drive(base: str, planted: dict) -> list[tuple[str, str]]:
    """(what, everything in the answer: status, headers, body) for each request made."""
    answers = []
    key, token, model, control = planted["api_key"], planted["token"], planted["model"], planted["control"]

    def record(what, answer: httpx.Response):
        answers.append((what, f"{answer.status_code} {dict(answer.headers)} {answer.text}"))
        return answer

    bearer = {"authorization": f"Bearer {key}"}
    chat = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    with httpx.Client(base_url=base, timeout=30) as client:
        assert record("models", client.get("/v1/models", headers=bearer)).status_code == 200
        assert record("chat", client.post("/v1/chat/completions", headers=bearer, json=chat)).status_code == 200
        assert record("stream", client.post("/v1/chat/completions", headers=bearer, json={**chat, "stream": True})).status_code == 200
        control.add_fault(status=401, message="bad key")  # the provider refuses our (canary) key
        assert record("upstream 401", client.post("/v1/chat/completions", headers=bearer, json=chat)).status_code >= 400
        control.add_fault(status=500)
        assert record("upstream 500", client.post("/v1/chat/completions", headers=bearer, json=chat)).status_code >= 500
        control.add_fault(malformed_chunk_at=1)  # a broken stream: logged with its traceback, reported to Sentry
        record("broken stream", client.post("/v1/chat/completions", headers=bearer, json={**chat, "stream": True}))
        control.add_fault(reset=True)
        record("reset", client.post("/v1/chat/completions", headers=bearer, json=chat))
        control.clear_faults()
        assert record("bad body", client.post("/v1/chat/completions", headers=bearer, content=b"{not json")).status_code == 400
        assert record("unknown model", client.post("/v1/chat/completions", headers=bearer,
                                                   json={**chat, "model": "nope/none"})).status_code in {400, 404}
        wrong = {"authorization": f"Bearer {key}x"}  # a wrong key that holds the real one: never echoed or logged
        assert record("wrong key", client.get("/v1/models", headers=wrong)).status_code == 401
        assert record("key in the query", client.get(f"/v1/models?api_key={key}")).status_code == 401
        assert record("oauth models", client.get("/v1/models", headers={"authorization": f"Bearer {token}"})).status_code == 200
        assert record("oauth usage", client.get("/api/v1/usage/", headers={"authorization": f"Bearer {token}"})).status_code == 200
        assert record("oauth wrong", client.get("/v1/models", headers={"authorization": f"Bearer {token}x"})).status_code == 401
        assert record("api keys", client.get("/api/v1/keys/", headers=bearer)).status_code == 200
        assert record("api usage", client.get("/api/v1/usage/", headers=bearer)).status_code == 200
        assert record("metrics", client.get("/metrics")).status_code == 200
        sign_in(client, planted["user"].username)
        provider = planted["provider"]
        credential = planted["credential"]
        for path in ["/", "/keys/", "/usage/", "/oauth-apps/", "/admin/", "/admin/keys/apikey/",
                     f"/admin/keys/apikey/?q={key}", "/admin/providers/provider/",
                     f"/admin/providers/provider/{provider.pk}/change/", "/admin/providers/credential/",
                     f"/admin/providers/credential/{credential.pk}/change/", "/admin/oauth/accesstoken/",
                     "/admin/audit/auditevent/", "/admin/usage/usagerecord/"]:
            answer = record(path, client.get(path, follow_redirects=True))
            assert answer.status_code in {200, 404}, (path, answer.status_code)
        found = client.get(f"/admin/keys/apikey/?q={key}", follow_redirects=True)  # a pasted key finds its row
        assert key.split("-")[1] in found.text and "1 api key" in found.text.lower()
    return answers


def sign_in(client: httpx.Client, username: str) -> None:
    page = client.get("/accounts/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    signed = client.post("/accounts/login/", data={"csrfmiddlewaretoken": csrf, "username": username,
                                                    "password": "correct horse battery"})
    assert signed.status_code == 302, signed.text[:500]


def redis_text(stream: str) -> str:
    """Every value XRouter keeps under its namespace in Redis (read only)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    parts = []
    for name in client.scan_iter(match=f"{settings.REDIS_NAMESPACE}*", count=1000):
        kind = client.type(name).decode()
        value = {"string": lambda n: client.get(n), "list": lambda n: client.lrange(n, 0, -1),
                 "hash": lambda n: client.hgetall(n), "set": lambda n: client.smembers(n),
                 "zset": lambda n: client.zrange(n, 0, -1), "stream": lambda n: client.xrange(n)}.get(kind, lambda n: b"")(name)
        parts.append(f"{name!r} {value!r}")
    assert any(stream in part for part in parts), "the usage stream was not written: the traffic was not billed"
    return "\n".join(parts)


def canaries(planted) -> dict[str, str]:
    key_secret = planted["api_key"].rsplit("-", 1)[1]
    return {"provider key": CANARY_PROVIDER_KEY, "header secret": CANARY_HEADER, "API key": planted["api_key"],
            "API key secret": key_secret, "OAuth token": planted["token"], "OAuth token secret": planted["token"][4:]}


def assert_clean(where: str, text: str, planted) -> None:
    for name, value in canaries(planted).items():
        assert value not in text, f"the {name} appears in {where}"


def test_the_traffic_reached_every_surface(observed, planted):
    """The scan below means something: the gateway logged at DEBUG, Sentry received an event, pages rendered."""
    assert '"levelname": "DEBUG"' in observed["log"]
    assert observed["sentry"], "no error report reached the Sentry stand-in"
    assert len(observed["answers"]) > 30
    assert not getattr(settings, "CELERY_RESULT_BACKEND", None)  # no task results are stored anywhere


def test_no_canary_in_the_log(observed, planted):
    assert_clean("the gateway's log", observed["log"], planted)


def test_no_canary_in_any_answer_or_page(observed, planted):
    for what, text in observed["answers"]:
        assert_clean(f"the answer to {what}", text, planted)


def test_no_canary_in_error_reports(observed, planted):
    for _headers, body in observed["sentry"]:
        assert_clean("an error report", body.decode(errors="replace"), planted)
        for line in body.decode(errors="replace").splitlines():
            json.loads(line)  # what was scanned is the envelope itself, not an unreadable blob


def test_no_canary_in_redis(observed, planted):
    assert_clean("Redis", observed["redis"], planted)
