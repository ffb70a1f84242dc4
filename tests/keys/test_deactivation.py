"""Issue 8 item 4: deactivating a user or an organisation refuses its keys in every process within a second."""

import uuid

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from apps.keys.selectors import key_info_for
from apps.keys.services import key_create
from tests.conftest import need

from .support import gateway_process, models_status, status_within


@pytest.fixture
def tenant(django_db_setup, django_db_blocker):
    """A committed organisation, user and key (server processes read them)."""
    from apps.accounts.models import Organisation, User

    with django_db_blocker.unblock():
        org = Organisation.objects.create(name=f"initech-{uuid.uuid4().hex[:6]}")
        user = User.objects.create(username=f"dave-{uuid.uuid4().hex[:6]}", organisation=org)
        _, plaintext = key_create(user=user, name="dave")
    return org, user, plaintext


@pytest.mark.parametrize("what", ["user", "organisation"])
def test_deactivating_refuses_the_keys_in_every_gateway_process_within_a_second(what, gateway, tenant, django_db_blocker):
    need("Redis (the bus between processes)", bool(settings.REDIS_URL))
    from apps.accounts.services import organisation_set_active, user_set_active

    org, user, plaintext = tenant
    with gateway_process() as second:
        bases = [gateway.base_url, second]
        assert [models_status(b, plaintext) for b in bases] == [200, 200]  # cached in both processes now

        with django_db_blocker.unblock():
            user_set_active(user, False) if what == "user" else organisation_set_active(org, False)
        for base in bases:
            status, took = status_within(lambda b=base: models_status(b, plaintext), 401, timeout=3.0)
            assert status == 401, f"{base} still serves the key of a deactivated {what}"
            assert took < 1.5  # "within a second", with room for a loaded CI machine

        with django_db_blocker.unblock():
            user_set_active(user, True) if what == "user" else organisation_set_active(org, True)
        for base in bases:
            assert status_within(lambda b=base: models_status(b, plaintext), 200, timeout=3.0)[0] == 200


@pytest.mark.django_db
def test_the_management_api_refuses_keys_of_an_inactive_organisation(alice, alice_key):
    from apps.accounts.services import organisation_set_active

    organisation_set_active(alice.organisation, False)
    assert key_info_for(alice_key.plaintext) is None
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_key.plaintext}")
    refused = api.get("/api/v1/usage/")
    # 403, not 401: DRF takes the status from its first authenticator (session), which sends no WWW-Authenticate.
    assert refused.status_code in (401, 403) and "revoked or expired" in refused.json()["error"]["message"]


@pytest.mark.django_db
def test_the_admin_deactivates_users_and_organisations_through_the_services(client, alice, bob, alice_key,
                                                                            django_capture_on_commit_callbacks):
    from apps.common import bus

    heard = []
    bus.subscribe("keys", heard.append)
    root = type(alice).objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            client.post("/admin/accounts/user/", {"action": "deactivate", "_selected_action": [bob.id]})
            client.post("/admin/accounts/organisation/", {"action": "deactivate", "_selected_action": [alice.organisation_id]})
    finally:
        bus._handlers["keys"].remove(heard.append)
    bob.refresh_from_db()
    alice.organisation.refresh_from_db()
    assert not bob.is_active and not alice.organisation.is_active
    assert {"user_id": bob.id} in heard and {"organisation_id": alice.organisation_id} in heard
    assert key_info_for(alice_key.plaintext) is None
