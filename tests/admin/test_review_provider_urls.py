"""Issue 8 review of item 20: the admin paths that moved a provider's URL while its stored secrets stayed.

- Staff who may change providers but have no permission on credentials get a change form
  without the credentials inline, so the formset that demands new secrets never ran: the
  URL moved and the stored secrets went to the new origin.
- Swapping base_url and auth_url kept the same *set* of origins, so the token secret (sent only
  to the auth origin) went to the API origin without being entered for it.
"""

import pytest
from django.contrib.auth.models import Permission

from apps.providers.models import Credential, Provider, url_origin
from tests.admin.test_provider_urls import change_form, root_client  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db
ATTACKER = "https://attacker.example/v1"


@pytest.fixture
def provider():
    provider = Provider.objects.create(name="review-urls", kind="gigachat", base_url="https://api.example/v1",
                                       auth_url="https://auth.example/oauth")
    Credential.objects.create(provider=provider, secrets={"authorization_key": "stored-secret"})
    return provider


def test_staff_without_credential_rights_cannot_move_the_stored_secrets_to_another_origin(client, django_user_model, provider):
    staff = django_user_model.objects.create_user("urls-only", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["change_provider", "view_provider"]))
    client.force_login(staff)
    form = change_form(provider, base_url=ATTACKER)
    answer = client.post(f"/admin/providers/provider/{provider.id}/change/", form)
    assert answer.status_code in (200, 302, 403)
    provider.refresh_from_db()
    credential = provider.credentials.get()
    moved = url_origin(provider.base_url) == url_origin(ATTACKER)
    assert not (moved and credential.secrets), "the stored secret now goes to " + provider.base_url


def test_swapping_base_and_auth_url_needs_the_secrets_again(root_client, provider):  # noqa: F811
    form = change_form(provider, base_url=provider.auth_url, auth_url=provider.base_url)
    answer = root_client.post(f"/admin/providers/provider/{provider.id}/change/", form)
    assert answer.status_code == 200 and "re-enter" in answer.content.decode()
    provider.refresh_from_db()
    assert provider.base_url == "https://api.example/v1"


@pytest.mark.parametrize("change", [{"verify_tls": ""}, {"ca_bundle": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"}])
def test_weakening_tls_trust_needs_the_secrets_again(root_client, provider, change):  # noqa: F811
    """verify_tls off or a CA bundle of one's own lets whoever sits on the path read the secrets:
    as much a new destination as a new host."""
    form = change_form(provider, **change)
    if change.get("verify_tls") == "":
        del form["verify_tls"]  # an unchecked box is absent from the POST
    answer = root_client.post(f"/admin/providers/provider/{provider.id}/change/", form)
    assert answer.status_code == 200 and "re-enter" in answer.content.decode()
    provider.refresh_from_db()
    assert provider.verify_tls and not provider.ca_bundle
