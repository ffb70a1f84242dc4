"""The cast with memberships: alice owns acme, bob is a developer in acme, charlie owns globex."""

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Membership


def _member(user, organisation, role):
    Membership.objects.update_or_create(user=user, organisation=organisation, defaults={"role": role})
    return user


@pytest.fixture
def alice(alice, acme):
    return _member(alice, acme, Membership.Role.OWNER)


@pytest.fixture
def bob(bob, acme):
    return _member(bob, acme, Membership.Role.DEVELOPER)


@pytest.fixture
def charlie(charlie, globex):
    return _member(charlie, globex, Membership.Role.OWNER)


@pytest.fixture
def signed_in():
    """signed_in(user) → an API client with the user's session (as the portal's browser has)."""

    def client_for(user):
        api = APIClient()
        api.force_login(user)
        return api

    return client_for
