"""External JWTs and memberships: the identity provider's role makes the member on first use; after that the
portal manages the membership, and a token does not undo what an owner did. (apps.oauth.external's loader,
called as the key cache's lookup thread calls it; the gateway path is tests/oauth/test_external_jwt.py.)"""

import time
import uuid

import pytest

from apps.accounts.models import Membership
from apps.accounts.services import membership_remove, membership_set_role
from apps.oauth.external import _load

pytestmark = pytest.mark.django_db
CONFIG = {"issuer": "https://id.example", "jwks_url": "https://id.example/jwks", "audience": "xrouter",
          "organisation_claim": "org", "role_claim": "role"}


def _claims(subject: str, organisation: str, role: str = "developer") -> dict:
    return {"iss": CONFIG["issuer"], "aud": "xrouter", "sub": subject, "exp": time.time() + 300,
            "org": organisation, "role": role}


def _info(claims: dict):
    return _load((CONFIG, claims), "unused-hash").info


def test_a_removed_external_member_stays_removed(alice, acme):
    claims = _claims(f"dora-{uuid.uuid4().hex[:6]}", acme.name, role="admin")
    first = _info(claims)
    dora = Membership.objects.get(user_id=first.user_id, organisation=acme)
    assert dora.role == "admin"

    membership_remove(dora, by=Membership.objects.get(user=alice, organisation=acme))

    assert _info(claims) is None  # refused, and not made a member again (with the token's role, too)
    assert not Membership.objects.filter(user_id=first.user_id, organisation=acme).exists()


def test_a_token_names_no_new_organisation_for_a_known_person(acme, globex):
    subject = f"erin-{uuid.uuid4().hex[:6]}"
    erin = _info(_claims(subject, acme.name)).user_id
    assert _info(_claims(subject, globex.name, role="owner")) is None  # globex's owners add her, if they want her
    assert not Membership.objects.filter(user_id=erin, organisation=globex).exists()


def test_the_portal_role_rules_not_the_tokens(alice, acme):
    claims = _claims(f"finn-{uuid.uuid4().hex[:6]}", acme.name, role="owner")
    finn = Membership.objects.get(user_id=_info(claims).user_id, organisation=acme)
    membership_set_role(finn, "billing_viewer", by=Membership.objects.get(user=alice, organisation=acme))
    assert _info(claims).scopes == frozenset({"models:read"})
