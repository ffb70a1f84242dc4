"""The cast with memberships (tests/accounts/conftest.py) and a browser-like client for the portal."""

import uuid

import pytest
from django.test import Client

from apps.accounts.models import Membership, User
from tests.accounts.conftest import alice, bob, charlie  # noqa: F401 (fixtures: owner, developer, other tenant)


@pytest.fixture
def browser():
    """browser(user=None, **headers) → a Django test client, signed in as `user` if given."""

    def make(user=None, **kwargs):
        client = Client(**kwargs)
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def dave(acme):
    """acme's billing viewer: sees usage and spend, no keys."""
    user = User.objects.create_user(f"dave-{uuid.uuid4().hex[:8]}", "dave@example.com", organisation=acme)
    Membership.objects.create(user=user, organisation=acme, role=Membership.Role.BILLING_VIEWER)
    return user
