"""Reads on accounts: invitations and two-factor devices."""

from django.conf import settings
from django.utils import timezone

from .models import Invitation, User

MAX_INVITATION_TOKEN = 100  # ours are 43 characters; anything much longer is not worth hashing


def invitation_by_token(token: str) -> Invitation | None:
    """The open invitation (not used, not expired) whose link carries `token`, or None."""
    if not token or len(token) > MAX_INVITATION_TOKEN:
        return None
    invitation = (Invitation.objects.select_related("organisation", "invited_by")
                  .filter(token_hash=Invitation.hash_token(token)).first())
    return invitation if invitation is not None and invitation.is_usable(timezone.now()) else None


def open_invitations(organisation_id: int):
    return Invitation.objects.filter(organisation_id=organisation_id, accepted_at__isnull=True,
                                     expires_at__gt=timezone.now()).order_by("-created_at")


def open_invitations_to(email: str):
    return Invitation.objects.filter(email__iexact=email, accepted_at__isnull=True, expires_at__gt=timezone.now())


def staff_verified(user) -> bool:
    """Whether a signed-in staff member may use staff rights now: with XROUTER_STAFF_TOTP (production) only
    after the session's code step — the admin's rule, and the API's staff reads' (every organisation's
    spend, everyone's usage)."""
    return user.is_staff and (not settings.XROUTER["STAFF_TOTP"] or getattr(user, "is_verified", lambda: False)())


def two_factor_enabled(user: User) -> bool:
    """Whether login asks this user for a code (a confirmed device)."""
    from django_otp import user_has_device

    return user_has_device(user)


def totp_pending_device(user: User):
    """The TOTP device being enrolled (shown as a QR code until confirmed), or None."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
