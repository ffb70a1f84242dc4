"""The audit log: each security-relevant action leaves one event naming who, what and from where, and
nothing — the ORM, the admin, a raw query on PostgreSQL — can change or delete an event."""

import csv
import datetime
import io
import re

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client
from rest_framework.test import APIClient

from apps.audit.models import AppendOnly, AuditEvent
from apps.keys.services import key_create, key_rotate
from tests.conftest import need

PASSWORD = "correct-horse-battery-staple-9"


def events(action: str):
    return list(AuditEvent.objects.filter(action=action))


def _portal_login(client: Client, username: str, password: str, address: str = "198.51.100.7"):
    page = client.get("/accounts/login/", REMOTE_ADDR=address)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    return client.post("/accounts/login/", {"csrfmiddlewaretoken": csrf, "username": username, "password": password,
                                            "next": "/"}, REMOTE_ADDR=address)


# --- append-only ------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_an_event_cannot_be_changed_or_deleted_through_the_orm():
    event = AuditEvent.objects.create(action="test.event", actor="system")
    event.action = "test.rewritten"
    with pytest.raises(AppendOnly):
        event.save()
    with pytest.raises(AppendOnly):
        event.delete()
    with pytest.raises(AppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(action="test.rewritten")
    with pytest.raises(AppendOnly):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


@pytest.mark.django_db
def test_postgresql_refuses_changes_even_to_raw_sql():
    need("PostgreSQL", connection.vendor == "postgresql")  # the trigger is PostgreSQL's: CI fails without it
    event = AuditEvent.objects.create(action="test.event", actor="system")
    for statement in ("UPDATE audit_auditevent SET action = 'x' WHERE id = %s", "DELETE FROM audit_auditevent WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


# --- what is recorded -------------------------------------------------------------------------------

@pytest.mark.django_db
def test_logins_and_failed_logins_are_recorded_with_the_client_address(django_user_model):
    user = django_user_model.objects.create_user("auditee", "auditee@example.com", PASSWORD)
    _portal_login(Client(), "auditee", "wrong-password-123")
    _portal_login(Client(), "auditee", PASSWORD)
    [failed] = events("login.failed")
    assert failed.detail == {"username": "auditee"} and failed.ip == "198.51.100.7" and failed.actor == "system"
    assert PASSWORD not in str(failed.detail) and "wrong-password" not in str(failed.detail)
    [succeeded] = events("login.succeeded")
    assert (succeeded.actor_id, succeeded.actor, succeeded.ip) == (user.pk, "auditee", "198.51.100.7")


@pytest.mark.django_db
def test_key_creation_rotation_and_revocation_name_the_actor(alice):
    key, plaintext = key_create(user=alice, name="admin-key", scopes=["chat", "keys:manage"], issued_by=alice)
    [created] = events("key.created")
    assert (created.actor, created.target_id, created.target_type) == ("alice", str(key.pk), "keys.apikey")
    assert plaintext not in str(created.__dict__) and key.hashed_key not in str(created.__dict__)
    # Through the management API, authenticated by the key itself: the actor is the key's user.
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    made = api.post("/api/v1/keys/", {"name": "backend"}, format="json", REMOTE_ADDR="203.0.113.9")
    assert made.status_code == 201
    assert api.post(f"/api/v1/keys/{made.json()['id']}/revoke/", REMOTE_ADDR="203.0.113.9").status_code == 200
    [revoked] = events("key.revoked")
    assert (revoked.actor, revoked.ip, revoked.target_id) == ("alice", "203.0.113.9", str(made.json()["id"]))
    via_api = next(e for e in events("key.created") if e.target_id == str(made.json()["id"]))
    assert via_api.detail["via_key"] == f"xr-{key.prefix}"
    new, _ = key_rotate(key, grace=datetime.timedelta(hours=1), by=alice)
    [rotated] = events("key.rotated")
    assert rotated.detail == {"new_key": f"xr-{new.prefix}", "grace_seconds": 3600} and rotated.actor == "alice"


@pytest.mark.django_db
def test_admin_changes_to_providers_are_recorded_without_secrets(client, django_user_model):
    from apps.providers.models import Provider

    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123456")
    client.force_login(root)
    form = {
        "name": "mts", "kind": "mts", "base_url": "https://api.gpt.mws.ru/v1", "auth_url": "", "enabled": "on",
        "jurisdiction": "RU", "extra_headers": "{}", "options": "{}", "ca_bundle": "", "verify_tls": "on",
        "client_cert": "", "client_key": "", "timeout": "",
        "credentials-TOTAL_FORMS": "1", "credentials-INITIAL_FORMS": "0", "credentials-MIN_NUM_FORMS": "0",
        "credentials-MAX_NUM_FORMS": "1000", "credentials-0-name": "default",
        "credentials-0-new_secrets": '{"api_key": "sk-AUDIT-SECRET"}', "credentials-0-max_concurrency": "2",
        "credentials-0-enabled": "on",
        "models-TOTAL_FORMS": "0", "models-INITIAL_FORMS": "0", "models-MIN_NUM_FORMS": "0", "models-MAX_NUM_FORMS": "1000",
    }
    response = client.post("/admin/providers/provider/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    provider = Provider.objects.get(name="mts")
    [added] = events("admin.added")
    assert added.actor == "root" and added.detail["model"] == "providers.provider"
    assert added.detail["object_id"] == str(provider.pk)
    assert "sk-AUDIT-SECRET" not in str(AuditEvent.objects.values_list("detail", flat=True)[::1])


@pytest.mark.django_db
def test_an_oauth_token_issued_is_recorded(alice, acme):
    from apps.oauth.models import Application
    from apps.oauth.services import application_create

    app, secret = application_create(user=alice, organisation=acme, name="batch job",
                                      client_type=Application.CLIENT_CONFIDENTIAL,
                                      authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS)
    answer = Client().post("/o/token/", {"grant_type": "client_credentials", "scope": "chat"},
                           HTTP_AUTHORIZATION="Basic " + __import__("base64").b64encode(
                               f"{app.client_id}:{secret}".encode()).decode())
    assert answer.status_code == 200, answer.content
    [issued] = events("oauth.token_issued")
    assert issued.target_id == str(app.pk) and issued.detail["organisation_id"] == acme.pk
    assert answer.json()["access_token"] not in str(issued.__dict__) and secret not in str(issued.__dict__)


@pytest.mark.django_db
def test_membership_changes_are_recorded(alice, bob, acme):
    from apps.accounts.models import Membership
    from apps.accounts.services import membership_remove, membership_set_role

    owner = Membership.objects.get(user=alice, organisation=acme)
    if owner.role != "owner":
        owner.role = "owner"
        owner.save()
    member = Membership.objects.get(user=bob, organisation=acme)
    membership_set_role(member, "admin", by=owner)
    membership_remove(Membership.objects.get(pk=member.pk), by=owner)
    [changed] = events("member.role_changed")
    assert changed.actor == "alice" and changed.detail["to"] == "admin" and changed.detail["user_id"] == bob.pk
    [removed] = events("member.removed")
    assert removed.detail["role"] == "admin"


# --- the admin: read-only, exportable ---------------------------------------------------------------

@pytest.mark.django_db
def test_the_admin_shows_the_log_read_only_and_exports_it_as_csv(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123456")
    client.force_login(root)
    AuditEvent.objects.create(action="test.formula", actor="=HYPERLINK(\"http://evil\")", target="t")
    listing = client.get("/admin/audit/auditevent/")
    assert listing.status_code == 200 and "test.formula" in listing.content.decode()
    assert "Export CSV" in listing.content.decode()
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    event = AuditEvent.objects.get(action="test.formula")
    page = client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    exported = client.get("/admin/audit/auditevent/export.csv?action__exact=test.formula")
    assert exported.status_code == 200 and exported["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert rows[0][:2] == ["at", "action"] and len(rows) == 2
    assert rows[1][3].startswith("'=")  # a spreadsheet shows it, never runs it


@pytest.mark.django_db
def test_an_auditor_reads_the_log_and_an_operator_does_not(client, django_user_model):
    from django.contrib.auth.models import Group

    auditor = django_user_model.objects.create_user("audrey", "a@example.com", "pw-audrey-12345", is_staff=True)
    auditor.groups.add(Group.objects.get(name="auditor"))
    operator = django_user_model.objects.create_user("otto", "o@example.com", "pw-otto-1234567", is_staff=True)
    operator.groups.add(Group.objects.get(name="operator"))
    client.force_login(auditor)
    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get("/admin/audit/auditevent/export.csv").status_code == 200
    client.force_login(operator)
    assert client.get("/admin/audit/auditevent/").status_code == 403
    assert client.get("/admin/audit/auditevent/export.csv").status_code == 403


@pytest.mark.django_db
def test_two_factor_removal_member_addition_and_oauth_application_changes_are_recorded(alice, bob, acme):
    """Each lowers or widens someone's access: an attacker in a session turns off the victim's second
    factor, adds an accomplice, or points an application's redirect URI at their own host."""
    from apps.accounts.models import Membership
    from apps.accounts.services import membership_add, membership_remove, two_factor_disable
    from apps.oauth.models import Application
    from apps.oauth.services import application_create, application_delete, application_update

    owner = Membership.objects.get(user=alice, organisation=acme)
    owner.role = "owner"
    owner.save()
    membership_remove(Membership.objects.get(user=bob, organisation=acme), by=owner)
    membership_add(acme, bob, "admin", by=owner)
    [added] = events("member.added")
    assert added.actor == "alice" and added.detail == {"user_id": bob.pk, "organisation_id": acme.pk, "role": "admin"}
    two_factor_disable(alice)
    [disabled] = events("totp.disabled")
    assert disabled.target_id == str(alice.pk)
    app, secret = application_create(user=alice, organisation=acme, name="batch job",
                                      client_type=Application.CLIENT_CONFIDENTIAL,
                                      authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS)
    application_update(app, by=alice, name="nightly batch")
    application_delete(app, by=alice)
    assert [e.action for e in AuditEvent.objects.filter(target_type="oauth.application").order_by("id")] == [
        "oauth.application_created", "oauth.application_changed", "oauth.application_deleted"]
    assert secret not in str([(e.detail, e.target) for e in AuditEvent.objects.all()])
    assert all(e.actor == "alice" for e in AuditEvent.objects.filter(action__startswith="oauth.application"))
