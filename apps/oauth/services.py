"""Writes on OAuth applications and external identities, and what tells the gateways a token died.

Application writes take the acting user: the person who registered the application, or an owner or
admin of its organisation, may change or delete it; any member but a billing viewer may register one.
Refusals raise PermissionDenied, bad values ValidationError.
"""

import hashlib

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from apps.accounts.models import Membership, Organisation, User
from apps.accounts.services import KEYS_TOPIC, membership_add
from apps.audit.services import audit
from apps.common import bus

from .models import AccessToken, Application, ExternalIdentity

Role = Membership.Role
REGISTRANT_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.DEVELOPER})
EDITABLE = ("name", "redirect_uris")


# The toolkit deletes access tokens in many places (revocation, refresh rotation, reuse protection
# revoking a family, cleartokens, an application's or user's deletion): a receiver is the one place
# that sees them all. It only announces, after commit, so every process drops the token from its cache.
@receiver(post_delete, sender=AccessToken)
def _access_token_deleted(sender, instance, **kwargs):
    token_id = instance.id
    transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"oauth_token_ids": [token_id]}))


def _require_registrant(user: User, organisation: Organisation) -> None:
    membership = Membership.objects.filter(user=user, organisation=organisation).first()
    if membership is None or membership.role not in REGISTRANT_ROLES:
        raise PermissionDenied("Only the organisation's owners, admins and developers may register OAuth applications.")


def may_manage(user: User, application: Application) -> bool:
    """The registrant, or an owner or admin of the application's organisation."""
    if application.user_id == user.id:
        return True
    return Membership.objects.filter(user=user, organisation_id=application.organisation_id,
                                     role__in=Membership.MANAGERS).exists()


def application_create(*, user: User, organisation: Organisation, name: str, client_type: str,
                       authorization_grant_type: str = Application.GRANT_AUTHORIZATION_CODE,
                       redirect_uris: str = "") -> tuple[Application, str]:
    """Register an application of `organisation`; returns (Application, client secret). The secret is
    stored hashed and shown only now; a public client gets none."""
    _require_registrant(user, organisation)
    secret = Application._meta.get_field("client_secret").default() if client_type == Application.CLIENT_CONFIDENTIAL else ""
    application = Application(
        user=user, organisation=organisation, name=name, client_type=client_type,
        authorization_grant_type=authorization_grant_type, redirect_uris=" ".join(redirect_uris.split()),
        client_secret=secret, algorithm=Application.RS256_ALGORITHM,
    )
    application.full_clean()
    application.save()
    audit("oauth.application_created", target=application, actor=user, detail={
        "organisation_id": organisation.pk, "client_type": client_type, "grant": authorization_grant_type,
        "redirect_uris": application.redirect_uris})
    return application, secret


def application_update(application: Application, *, by: User, **fields) -> Application:
    """Rename it or change its redirect URIs (registrant, owners and admins)."""
    if not may_manage(by, application):
        raise PermissionDenied("Only the application's registrant and the organisation's owners and admins may change it.")
    for name, value in fields.items():
        if name not in EDITABLE:
            raise ValueError(f"{name} cannot be changed")
        setattr(application, name, " ".join(value.split()) if name == "redirect_uris" else value)
    application.full_clean()
    application.save(update_fields=[*fields, "updated"])
    audit("oauth.application_changed", target=application, actor=by,
          detail={name: getattr(application, name) for name in fields})
    return application


def application_delete(application: Application, *, by: User) -> None:
    """Delete it with its tokens; every gateway process refuses them within a second."""
    if not may_manage(by, application):
        raise PermissionDenied("Only the application's registrant and the organisation's owners and admins may delete it.")
    with transaction.atomic():
        audit("oauth.application_deleted", target=application, actor=by,
              detail={"organisation_id": application.organisation_id})
        application.delete()


def external_user_for(issuer: str, subject: str, organisation: Organisation, role: str) -> User:
    """The user of an external identity provider's subject, made on first use as a member of
    `organisation` with `role`. Later tokens change no membership: the portal manages it (a member removed
    there stays removed; another organisation a token names adds the person only if its owners do)."""
    identity = ExternalIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    if identity is None:
        digest = hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()[:12]
        try:
            with transaction.atomic():  # the person and their membership at once: no lookup sees one alone
                user = User.objects.create(username=f"ext-{digest}", is_active=True)
                user.set_unusable_password()
                user.save(update_fields=["password"])
                identity = ExternalIdentity.objects.create(issuer=issuer, subject=subject, user=user)
                membership_add(organisation, user, role if role in Role.values else Role.DEVELOPER)
        except IntegrityError:  # a concurrent first call (another process) made it
            identity = ExternalIdentity.objects.select_related("user").get(issuer=issuer, subject=subject)
    return identity.user
