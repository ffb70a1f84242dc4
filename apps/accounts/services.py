"""Writes on users, organisations and memberships, including those that change who may call the gateway.

Membership writes take `by`: the acting person's Membership in the organisation (None: an operator, the
admin or a command, who are trusted). Refusals raise PermissionDenied, bad values ValidationError, with
messages in the request's language (the portal's; /api is always English).
"""

import base64
import datetime
import hashlib
import secrets

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.services import audit
from apps.common import bus
from apps.common.client_address import canonical_networks
from apps.common.personal_data import RANK, validate_terms

from .models import Invitation, Membership, Organisation, User, validate_model_globs

# The key caches of every process listen on this topic (apps.keys.selectors).
KEYS_TOPIC = "keys"
UNSET = object()
Role = Membership.Role


def user_set_active(user: User, is_active: bool) -> None:
    """(De)activate a user; every gateway process refuses (or accepts again) their keys within a second."""
    user.is_active = is_active
    user.save(update_fields=["is_active"])
    audit("user.activated" if is_active else "user.deactivated", target=user)
    transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"user_id": user.id}))


def organisation_set_active(organisation: Organisation, is_active: bool) -> None:
    """(De)activate an organisation: the keys of the organisation and of its members, everywhere."""
    organisation.is_active = is_active
    organisation.save(update_fields=["is_active"])
    audit("organisation.activated" if is_active else "organisation.deactivated", target=organisation)
    transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"organisation_id": organisation.id}))


def organisation_limits_announce(organisation: Organisation) -> None:
    """After an edit of the organisation's limits (saved by the caller): every gateway process reloads its keys."""
    transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"organisation_id": organisation.id}))


def organisation_update_policy(organisation: Organisation, *, allowed_models=UNSET, residency=UNSET,
                               monthly_budget=UNSET, allowed_ips=UNSET, pd_policy=UNSET, pd_names=UNSET,
                               blocked_terms=UNSET, by: Membership | None = None) -> None:
    """Change the policy that bounds keys created in the organisation from now on (owners and admins),
    or its monthly budget (roubles, VAT included; None: none) or IP allow-list (CIDRs; empty: any), which
    bound every request at once, or its personal-data policy (apps.common.personal_data), which also applies
    to every existing key at once.

    Keys that exist keep their own limits; the policy is checked where keys are made (key_create)."""
    require_manager(by)
    fields = []
    if allowed_models is not UNSET:
        validate_model_globs(allowed_models)
        organisation.allowed_models, fields = list(allowed_models), fields + ["allowed_models"]
    if residency is not UNSET:
        organisation.residency, fields = residency or "", fields + ["residency"]
    if monthly_budget is not UNSET:
        if monthly_budget is not None and monthly_budget < 0:
            raise ValidationError({"monthly_budget": "A budget is 0 roubles or more (empty: none)."})
        organisation.monthly_budget, fields = monthly_budget, fields + ["monthly_budget"]
    if allowed_ips is not UNSET:
        try:
            organisation.allowed_ips = canonical_networks(allowed_ips or [])
        except ValidationError as exc:
            raise ValidationError({"allowed_ips": exc.messages}) from None
        fields.append("allowed_ips")
    if pd_policy is not UNSET:
        if pd_policy not in RANK:
            raise ValidationError({"pd_policy": f"Use one of {', '.join(RANK)}."})
        organisation.pd_policy, fields = pd_policy, fields + ["pd_policy"]
    if pd_names is not UNSET:
        organisation.pd_names, fields = bool(pd_names), fields + ["pd_names"]
    if blocked_terms is not UNSET:
        validate_terms(blocked_terms)
        organisation.blocked_terms, fields = list(blocked_terms), fields + ["blocked_terms"]
    if fields:
        organisation.save(update_fields=fields)
        # Keys keep their own limits, but OAuth tokens and external JWTs take the policy as it is now:
        # every process re-reads the organisation's cached credentials.
        transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"organisation_id": organisation.id}))


def organisation_create_for(user: User, name: str) -> Organisation:
    """A new organisation owned by `user` (sign-up). A taken name gets a suffix: -2, -3, … then a random one."""
    base = name.strip()[:180] or user.username
    candidates = [base, *(f"{base}-{n}" for n in range(2, 10)), f"{base}-{secrets.token_hex(4)}"]
    for candidate in candidates:
        try:
            with transaction.atomic():
                organisation = Organisation.objects.create(name=candidate)
                membership_add(organisation, user, Role.OWNER)
                return organisation
        except IntegrityError:  # the name is taken (also by a concurrent sign-up)
            continue
    raise ValidationError("Could not find a free organisation name; choose another.")


def membership_add(organisation: Organisation, user: User, role: str = Role.DEVELOPER, *,
                   by: Membership | None = None) -> Membership:
    """Add a user to an organisation; it becomes their default organisation unless they have one of theirs."""
    require_manager(by, role)
    _check_role(role)
    try:
        with transaction.atomic():
            membership = Membership.objects.create(organisation=organisation, user=user, role=role)
            user_settle_default_organisation(user)
            audit("member.added", target=membership, actor=by.user if by else None,
                  detail={"user_id": user.pk, "organisation_id": organisation.pk, "role": role})
    except IntegrityError:  # the unique constraint, also when two requests add the same person at once
        raise ValidationError(_("%(member)s is already a member of %(organisation)s.")
                              % {"member": user.username, "organisation": organisation.name}) from None
    return membership


def membership_set_role(membership: Membership, role: str, *, by: Membership | None = None) -> None:
    """Change a member's role. Only owners grant or take the owner role; the last owner stays one.
    Every process re-checks the member's keys: a billing viewer's keys in the organisation are refused."""
    require_manager(by, role, membership.role)
    _check_role(role)
    with transaction.atomic():
        if membership.role == Role.OWNER and role != Role.OWNER:
            _keep_an_owner(membership)
        audit("member.role_changed", target=membership, actor=by.user if by else None,
              detail={"user_id": membership.user_id, "organisation_id": membership.organisation_id,
                      "from": membership.role, "to": role})
        membership.role = role
        membership.save(update_fields=["role"])
        transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"user_id": membership.user_id}))


def membership_remove(membership: Membership, *, by: Membership | None = None) -> None:
    """Remove a member: their keys in the organisation are refused from then on, in every process (the key
    lookup requires membership; the keys stay listed for the owners and admins, who may revoke them). If it
    was their default organisation, another of theirs (or none) becomes the default."""
    require_manager(by, membership.role)
    user = membership.user
    with transaction.atomic():
        if membership.role == Role.OWNER:
            _keep_an_owner(membership)
        audit("member.removed", target=membership, actor=by.user if by else None,
              detail={"user_id": membership.user_id, "organisation_id": membership.organisation_id, "role": membership.role})
        membership.delete()
        user_settle_default_organisation(user)


def user_settle_default_organisation(user: User) -> None:
    """After the user's memberships changed: make their default organisation one of theirs (kept if still a
    membership, else their oldest membership's, or none), and have every process re-check their keys
    (which follow their memberships and default organisation)."""
    organisation_ids = list(Membership.objects.filter(user=user).order_by("created_at", "id")
                            .values_list("organisation_id", flat=True))
    if user.organisation_id not in organisation_ids:
        user.organisation_id = organisation_ids[0] if organisation_ids else None
        user.save(update_fields=["organisation"])
    transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"user_id": user.id}))


def require_manager(by: Membership | None, *roles: str) -> None:
    """Refuse unless `by` (None: an operator) may manage the organisation, and the owner role if it is among roles."""
    if by is None:
        return
    if not by.manages:
        raise PermissionDenied(_("Only the organisation's owners and admins may do this."))
    if Role.OWNER in roles and by.role != Role.OWNER:
        raise PermissionDenied(_("Only an owner may grant, change or remove the owner role."))


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise ValidationError(_("Unknown role %(role)r; use %(roles)s.") % {"role": role, "roles": ", ".join(Role.values)})


def _keep_an_owner(membership: Membership) -> None:
    # Lock the owners' rows, so two owners demoting each other at once cannot leave none.
    owners = Membership.objects.select_for_update().filter(organisation_id=membership.organisation_id, role=Role.OWNER)
    if not set(owners.values_list("pk", flat=True)) - {membership.pk}:
        raise PermissionDenied(_("An organisation keeps at least one owner: make someone else owner first."))


def user_delete(user: User) -> None:
    """Delete a user (their keys go by cascade) and drop their keys from every process's key cache."""
    user_id = user.id
    with transaction.atomic():
        user.delete()
        transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"user_id": user_id}))


def organisation_delete(organisation: Organisation) -> None:
    """Delete an organisation and tell every key cache. ProtectedError while it has keys (ApiKey.organisation):
    deactivate it instead (a deleted tenant's keys must not live on as keys of no tenant)."""
    organisation_id = organisation.id
    with transaction.atomic():
        organisation.delete()
        transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"organisation_id": organisation_id}))


def user_create_from_identity(email: str, username_hint: str) -> User:
    """An active account for an address an identity provider vouched for; it has no password (the provider
    signs them in; a password reset can give them one). The username is the hint, made unique."""
    base = "".join(c for c in username_hint if c.isalnum() or c in "@.+-_")[:140] or "user"
    for candidate in [base, *(f"{base}-{secrets.token_hex(3)}" for _attempt in range(5))]:
        try:
            with transaction.atomic():
                return User.objects.create_user(candidate, email, password=None)
        except IntegrityError:  # the username is taken
            continue
    raise ValidationError("Could not find a free username.")


# --- Invitations ---

MAX_OPEN_INVITATIONS = 100  # per organisation: the portal sends no more mail than this on anyone's behalf


def invitation_create(organisation: Organisation, email: str, role: str = Role.DEVELOPER, *, days: int,
                      by: Membership | None = None) -> tuple[Invitation, str]:
    """Invite `email` into the organisation with `role` for `days` (owners and admins; only owners invite owners).

    Returns the invitation and its token, which goes into the e-mailed link and is stored only hashed. An
    earlier open invitation of the same address to the same organisation is replaced."""
    require_manager(by, role)
    _check_role(role)
    email = email.strip()
    if Membership.objects.filter(organisation=organisation, user__email__iexact=email).exists():
        raise ValidationError(_("%(member)s is already a member of %(organisation)s.")
                              % {"member": email, "organisation": organisation.name})
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        Invitation.objects.filter(organisation=organisation, email__iexact=email, accepted_at__isnull=True).delete()
        open_now = Invitation.objects.filter(organisation=organisation, accepted_at__isnull=True,
                                             expires_at__gt=timezone.now()).count()
        if open_now >= MAX_OPEN_INVITATIONS:
            raise ValidationError(_("%(organisation)s has %(count)s open invitations: revoke some first.")
                                  % {"organisation": organisation.name, "count": open_now})
        invitation = Invitation.objects.create(
            organisation=organisation, email=email, role=role, token_hash=Invitation.hash_token(token),
            invited_by=by.user if by else None, expires_at=timezone.now() + datetime.timedelta(days=days))
        audit("invitation.created", target=organisation, actor=by.user if by else None,
              detail={"email": email, "role": role, "days": days})
    return invitation, token


def invitation_accept(invitation: Invitation, user: User) -> Membership:
    """Make `user` (whose address the invitation names) a member with the invitation's role; the link then
    stops working. ValidationError when it was used, revoked or has expired meanwhile."""
    if user.email.strip().lower() != invitation.email.strip().lower():
        raise PermissionDenied(_("This invitation is for another e-mail address."))
    with transaction.atomic():
        # Locked: two tabs accepting one link at once make one membership, not two (or an error page).
        fresh = Invitation.objects.select_for_update().filter(pk=invitation.pk).first()
        if fresh is None or not fresh.is_usable(timezone.now()):
            raise ValidationError(_("This invitation has expired or was used already."))
        membership = membership_add(fresh.organisation, user, fresh.role)
        fresh.accepted_at, fresh.accepted_by = timezone.now(), user
        fresh.save(update_fields=["accepted_at", "accepted_by"])
        audit("invitation.accepted", target=fresh.organisation, actor=user, detail={"role": fresh.role})
    return membership


def invitation_sign_up(invitation: Invitation, username: str, password: str) -> User:
    """A new, active account for the invited address (the link proved it), made a member by the invitation."""
    with transaction.atomic():
        user = User.objects.create_user(username, invitation.email, password)
        invitation_accept(invitation, user)
    return user


def invitation_revoke(invitation: Invitation, *, by: Membership | None = None) -> None:
    """Withdraw an open invitation: its link stops working (owners and admins; owner invitations: owners)."""
    require_manager(by, invitation.role)
    audit("invitation.revoked", target=invitation.organisation, actor=by.user if by else None,
          detail={"email": invitation.email, "role": invitation.role})
    invitation.delete()


# --- Two-factor login (django-otp devices; imported here only, so processes that never log anyone in
# do not load them) ---

RECOVERY_CODES = 10
RECOVERY_CODE_BYTES = 10  # 80 bits: 16 base32 characters, shown as four groups of four


def totp_enrolment_start(user: User):
    """A new, unconfirmed TOTP device for the user (an earlier unconfirmed one goes). It counts for
    login only once confirmed with a code from the authenticator app (totp_enrolment_confirm)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)


def totp_enrolment_confirm(device, code: str) -> list[str] | None:
    """Confirm an enrolment with a code the app shows: login then asks for a code. Returns the new recovery
    codes (each works once; the caller shows them once), or None if the code is wrong."""
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
    from django_otp.plugins.otp_totp.models import TOTPDevice

    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        if device.confirmed or not device.verify_token(_digits(code)):
            return None
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        audit("totp.enrolled", target=device.user, actor=device.user)
        TOTPDevice.objects.filter(user_id=device.user_id).exclude(pk=device.pk).delete()
        StaticDevice.objects.filter(user_id=device.user_id).delete()
        recovery = StaticDevice.objects.create(user_id=device.user_id, name="recovery codes")
        codes = [base64.b32encode(secrets.token_bytes(RECOVERY_CODE_BYTES)).decode().lower()
                 for _ in range(RECOVERY_CODES)]
        StaticToken.objects.bulk_create(StaticToken(device=recovery, token=_recovery_hash(code)) for code in codes)
    return ["-".join(code[i:i + 4] for i in range(0, len(code), 4)) for code in codes]


def two_factor_verify(user: User, code: str):
    """The device that accepts `code` (six digits: the authenticator; otherwise a recovery code, which is
    then used up), or None. django-otp refuses a TOTP code used before and slows down repeated failures."""
    from django_otp import devices_for_user
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    code = _digits(code).replace("-", "").lower()
    if not code or len(code) > 32:
        return None
    # Only devices of the code's kind are tried: a mistyped app code does not slow down the recovery codes.
    kind, code = (TOTPDevice, code) if len(code) == 6 and code.isdigit() else (StaticDevice, _recovery_hash(code))
    with transaction.atomic():
        for device in devices_for_user(user, for_verify=True):
            if isinstance(device, kind) and device.verify_token(code):
                return device
    return None


def two_factor_disable(user: User) -> None:
    """Remove the user's authenticator and recovery codes: login asks for a password only."""
    from django_otp import devices_for_user

    with transaction.atomic():
        for device in list(devices_for_user(user, confirmed=None)):
            device.delete()
        audit("totp.disabled", target=user)


def _digits(code: str) -> str:
    return "".join(code.split())  # apps show "123 456"


def _recovery_hash(code: str) -> str:
    # Recovery codes are stored hashed, like keys: django-otp's token column holds 16 characters, so 64 bits of
    # SHA-256 (finding another code with the same 64 bits is out of reach; the codes themselves have 80).
    return hashlib.sha256(code.encode()).hexdigest()[:16]
