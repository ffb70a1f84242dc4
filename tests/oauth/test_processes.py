"""A revoked token, or one of a deactivated user or organisation, is refused by every gateway process
within a second (the bus), with two real gateway processes that both had it cached."""

import uuid

import pytest
from authlib.integrations.httpx_client import OAuth2Client
from django.conf import settings

from tests.conftest import need
from tests.keys.support import gateway_process, status_within

from .conftest import models_status


@pytest.fixture
def tenant(world, django_db_blocker):
    """A committed organisation of its own, its owner and a client-credentials application (with a token)."""
    from apps.accounts.models import Organisation, User
    from apps.accounts.services import membership_add
    from apps.oauth.models import Application
    from apps.oauth.services import application_create

    suffix = uuid.uuid4().hex[:6]
    with django_db_blocker.unblock():
        organisation = Organisation.objects.create(name=f"hooli-{suffix}")
        user = User.objects.create_user(f"gavin-{suffix}")
        membership_add(organisation, user, "owner")
        application, secret = application_create(user=user, organisation=organisation, name="hooli batch",
                                                 client_type=Application.CLIENT_CONFIDENTIAL,
                                                 authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS)
    client = OAuth2Client(application.client_id, secret, scope="models:read", timeout=30)
    token = client.fetch_token(world.token_url, grant_type="client_credentials")["access_token"]
    return organisation, user, client, token


def _refused_everywhere(bases, token):
    for base in bases:
        status, took = status_within(lambda b=base: models_status(b, token), 401, timeout=3.0)
        assert status == 401, f"{base} still serves the token"
        assert took < 1.5  # "within a second", with room for a loaded CI machine


def test_a_revoked_token_is_refused_by_every_gateway_process_within_a_second(world, tenant):
    need("Redis (the bus between processes)", bool(settings.REDIS_URL))
    _, _, client, token = tenant
    with gateway_process() as second:
        bases = [world.base, second]
        assert [models_status(b, token) for b in bases] == [200, 200]  # cached in both processes now
        assert client.revoke_token(world.base + "/o/revoke_token/", token=token).status_code == 200
        _refused_everywhere(bases, token)


@pytest.mark.parametrize("what", ["user", "organisation"])
def test_deactivating_refuses_the_tokens_in_every_gateway_process_within_a_second(what, world, tenant, django_db_blocker):
    need("Redis (the bus between processes)", bool(settings.REDIS_URL))
    from apps.accounts.services import organisation_set_active, user_set_active

    organisation, user, client, token = tenant
    with gateway_process() as second:
        bases = [world.base, second]
        assert [models_status(b, token) for b in bases] == [200, 200]
        with django_db_blocker.unblock():
            user_set_active(user, False) if what == "user" else organisation_set_active(organisation, False)
        _refused_everywhere(bases, token)
        if what == "organisation":  # and no new token is issued to an inactive tenant's application
            with pytest.raises(Exception) as refused:
                client.fetch_token(world.token_url, grant_type="client_credentials")
            assert "invalid_client" in str(refused.value)
        with django_db_blocker.unblock():
            user_set_active(user, True) if what == "user" else organisation_set_active(organisation, True)
        for base in bases:
            assert status_within(lambda b=base: models_status(b, token), 200, timeout=3.0)[0] == 200
