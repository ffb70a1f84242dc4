"""The members page and invitations by e-mail: owners and admins invite, re-role, remove and revoke; the
invited address signs up (or joins, if it has an account) through a link that works once, until it expires."""

import datetime
import hashlib
import re
import uuid

import pytest
from django.core import mail
from django.utils import timezone

from apps.accounts.models import Invitation, Membership, User

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery-42"
Role = Membership.Role


def _address(stem="new"):
    return f"{stem}-{uuid.uuid4().hex[:8]}@example.com"


def _invite(client, organisation, email, role="developer"):
    return client.post(f"/members/{organisation.pk}/invite/", {"email": email, "role": role})


def _link(message) -> str:
    return re.search(r"https?://[^/\s]+(/\S+)", message.body).group(1)


def test_an_invited_address_signs_up_through_the_link_and_joins(browser, alice, acme):
    email = _address()
    invited = _invite(browser(alice), acme, email, "admin")
    assert invited.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [email]
    link = _link(mail.outbox[0])
    token = link.split("token=", 1)[1]
    invitation = Invitation.objects.get(email=email)
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(Invitation.objects.filter(pk=invitation.pk).values().get())  # only the hash is kept
    newcomer = browser()

    opened = newcomer.get(link)
    assert opened.status_code == 302 and opened["Location"] == "/invitation/"  # the token leaves the URL
    form = newcomer.get("/invitation/")
    assert email in form.content.decode() and "acme" in form.content.decode()
    username = f"newcomer-{uuid.uuid4().hex[:6]}"
    joined = newcomer.post("/invitation/", {"username": username, "password1": PASSWORD, "password2": PASSWORD})

    assert joined.status_code == 302 and joined["Location"] == f"/members/{acme.pk}/"
    user = User.objects.get(username=username)
    assert (user.email, user.is_active, user.organisation_id) == (email, True, acme.pk)
    assert Membership.objects.get(user=user, organisation=acme).role == Role.ADMIN
    assert newcomer.session["_auth_user_id"] == str(user.pk)
    assert Invitation.objects.get(pk=invitation.pk).accepted_by == user
    again = browser().get(link, follow=True)
    assert again.status_code == 400  # once only


def test_an_expired_link_is_refused(browser, alice, acme):
    email = _address()
    _invite(browser(alice), acme, email)
    Invitation.objects.filter(email=email).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))

    page = browser().get(_link(mail.outbox[0]), follow=True)

    assert page.status_code == 400 and not User.objects.filter(email=email).exists()


def test_a_forged_token_is_refused(browser):
    assert browser().get("/invitation/?token=" + "x" * 43, follow=True).status_code == 400
    assert browser().get("/invitation/?token=" + "x" * 5000, follow=True).status_code == 400


def test_an_existing_account_signs_in_and_joins(browser, alice, acme, charlie, globex):
    _invite(browser(charlie), globex, alice.email, "billing_viewer")
    link = _link(mail.outbox[0])
    client = browser()

    client.get(link)
    page = client.get("/invitation/").content.decode()
    assert "/accounts/login/?next=%2Finvitation%2F" in page  # sign in first
    client.force_login(alice)
    joined = client.post("/invitation/")

    assert joined.status_code == 302
    assert Membership.objects.get(user=alice, organisation=globex).role == Role.BILLING_VIEWER


def test_another_signed_in_account_cannot_take_the_invitation(browser, alice, acme, charlie):
    email = _address()
    _invite(browser(alice), acme, email)
    client = browser(charlie)
    client.get(_link(mail.outbox[0]))

    refused = client.post("/invitation/")

    assert refused.status_code == 200 and not Membership.objects.filter(user=charlie, organisation=acme).exists()
    assert Invitation.objects.get(email=email).accepted_at is None


def test_invite_only_sign_up_still_takes_invited_addresses(browser, settings, alice, acme):
    settings.XROUTER = settings.XROUTER | {"SIGNUP": "invite"}
    email = _address()
    _invite(browser(alice), acme, email)
    client = browser()
    client.get(_link(mail.outbox[0]))
    username = f"invited-{uuid.uuid4().hex[:6]}"

    client.post("/invitation/", {"username": username, "password1": PASSWORD, "password2": PASSWORD})

    assert Membership.objects.filter(user__username=username, organisation=acme).exists()
    assert "по приглашению" in browser().get("/signup/").content.decode()


def test_members_page_lists_members_and_roles(browser, alice, bob, acme):
    page = browser(bob).get(f"/members/{acme.pk}/")
    body = page.content.decode()
    assert page.status_code == 200 and alice.username in body and bob.username in body
    assert "/invite/" not in body and "/remove/" not in body  # a developer manages nothing
    assert browser(alice).get("/members/")["Location"] == f"/members/{acme.pk}/"


def test_owners_change_roles_and_remove_members(browser, alice, bob, acme):
    client = browser(alice)
    bob_membership = Membership.objects.get(user=bob, organisation=acme)

    client.post(f"/members/{acme.pk}/{bob_membership.pk}/role/", {"role": "admin"})
    assert Membership.objects.get(pk=bob_membership.pk).role == Role.ADMIN
    client.post(f"/members/{acme.pk}/{bob_membership.pk}/remove/")
    assert not Membership.objects.filter(pk=bob_membership.pk).exists()


def test_the_last_owner_stays(browser, alice, acme):
    mine = Membership.objects.get(user=alice, organisation=acme)
    page = browser(alice).post(f"/members/{acme.pk}/{mine.pk}/role/", {"role": "developer"}, follow=True)
    assert Membership.objects.get(pk=mine.pk).role == Role.OWNER
    assert "хотя бы один владелец" in page.content.decode()  # the refusal, translated


def test_admins_cannot_grant_or_invite_owners(browser, alice, bob, acme):
    Membership.objects.filter(user=bob, organisation=acme).update(role=Role.ADMIN)
    client = browser(bob)
    alice_membership = Membership.objects.get(user=alice, organisation=acme)

    refused_invite = _invite(client, acme, _address(), "owner")
    client.post(f"/members/{acme.pk}/{alice_membership.pk}/role/", {"role": "developer"})
    client.post(f"/members/{acme.pk}/{alice_membership.pk}/remove/")

    assert refused_invite.status_code == 400 and mail.outbox == []
    assert Membership.objects.get(pk=alice_membership.pk).role == Role.OWNER


def test_a_developer_cannot_invite_re_role_or_remove(browser, alice, bob, acme):
    client = browser(bob)
    alice_membership = Membership.objects.get(user=alice, organisation=acme)
    assert _invite(client, acme, _address()).status_code == 403
    client.post(f"/members/{acme.pk}/{alice_membership.pk}/remove/")
    client.post(f"/members/{acme.pk}/{Membership.objects.get(user=bob).pk}/role/", {"role": "owner"})
    assert mail.outbox == [] and Membership.objects.get(pk=alice_membership.pk).role == Role.OWNER
    assert Membership.objects.get(user=bob, organisation=acme).role == Role.DEVELOPER


def test_revoking_an_invitation_kills_its_link(browser, alice, acme):
    email = _address()
    client = browser(alice)
    _invite(client, acme, email)
    invitation = Invitation.objects.get(email=email)
    assert email in client.get(f"/members/{acme.pk}/").content.decode()

    client.post(f"/members/{acme.pk}/invitations/{invitation.pk}/revoke/")

    assert not Invitation.objects.filter(pk=invitation.pk).exists()
    assert browser().get(_link(mail.outbox[0]), follow=True).status_code == 400


def test_inviting_a_member_is_refused(browser, alice, bob, acme):
    page = _invite(browser(alice), acme, bob.email)
    assert page.status_code == 400 and mail.outbox == []


def test_another_tenant_gets_404_everywhere(browser, alice, bob, acme, charlie):
    _invite(browser(alice), acme, _address())
    invitation = Invitation.objects.filter(organisation=acme).latest("pk")
    bob_membership = Membership.objects.get(user=bob, organisation=acme)
    client = browser(charlie)

    answers = [
        client.get(f"/members/{acme.pk}/").status_code,
        _invite(client, acme, _address()).status_code,
        client.post(f"/members/{acme.pk}/{bob_membership.pk}/role/", {"role": "owner"}).status_code,
        client.post(f"/members/{acme.pk}/{bob_membership.pk}/remove/").status_code,
        client.post(f"/members/{acme.pk}/invitations/{invitation.pk}/revoke/").status_code,
    ]

    assert answers == [404] * 5
    assert Membership.objects.filter(pk=bob_membership.pk, role=Role.DEVELOPER).exists()
    assert Invitation.objects.filter(pk=invitation.pk).exists()


def test_a_member_of_two_organisations_cannot_act_across_them(browser, alice, acme, charlie, globex):
    """charlie owns globex; as a member of acme too he still cannot touch globex's rows through acme's URLs."""
    Membership.objects.create(user=charlie, organisation=acme, role=Role.OWNER)
    mine = Membership.objects.get(user=charlie, organisation=globex)
    client = browser(alice)
    assert client.post(f"/members/{acme.pk}/{mine.pk}/remove/").status_code == 404
    assert Membership.objects.filter(pk=mine.pk).exists()


def test_open_invitations_are_bounded(browser, settings, alice, acme, monkeypatch):
    from apps.accounts import services

    monkeypatch.setattr(services, "MAX_OPEN_INVITATIONS", 2)
    client = browser(alice)
    answers = [_invite(client, acme, _address()).status_code for _ in range(3)]
    assert answers == [302, 302, 400] and len(mail.outbox) == 2
