"""Writes on users, organisations and memberships, including those that change who may call the gateway.

Membership writes take `by`: the acting person's Membership in the organisation (None: an operator, the
admin or a command, who are trusted). Refusals raise PermissionDenied, bad values ValidationError.
"""

import secrets

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from apps.common import bus

from .models import Membership, Organisation, User, validate_model_globs

# The key caches of every process listen on this topic (apps.keys.selectors).
KEYS_TOPIC = "keys"
UNSET = object()
Role = Membership.Role


def user_set_active(user: User, is_active: bool) -> None:
    """(De)activate a user; every gateway process refuses (or accepts again) their keys within a second."""
    user.is_active = is_active
    user.save(update_fields=["is_active"])
    transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"user_id": user.id}))


def organisation_set_active(organisation: Organisation, is_active: bool) -> None:
    """(De)activate an organisation: the keys of the organisation and of its members, everywhere."""
    organisation.is_active = is_active
    organisation.save(update_fields=["is_active"])
    transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"organisation_id": organisation.id}))


def organisation_limits_announce(organisation: Organisation) -> None:
    """After an edit of the organisation's limits (saved by the caller): every gateway process reloads its keys."""
    transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"organisation_id": organisation.id}))


def organisation_update_policy(organisation: Organisation, *, allowed_models=UNSET, residency=UNSET,
                               by: Membership | None = None) -> None:
    """Change the policy that bounds keys created in the organisation from now on (owners and admins).

    Keys that exist keep their own limits; the policy is checked where keys are made (key_create)."""
    require_manager(by)
    fields = []
    if allowed_models is not UNSET:
        validate_model_globs(allowed_models)
        organisation.allowed_models, fields = list(allowed_models), fields + ["allowed_models"]
    if residency is not UNSET:
        organisation.residency, fields = residency or "", fields + ["residency"]
    if fields:
        organisation.save(update_fields=fields)


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
    except IntegrityError:  # the unique constraint, also when two requests add the same person at once
        raise ValidationError(f"{user.username} is already a member of {organisation.name}.") from None
    return membership


def membership_set_role(membership: Membership, role: str, *, by: Membership | None = None) -> None:
    """Change a member's role. Only owners grant or take the owner role; the last owner stays one."""
    require_manager(by, role, membership.role)
    _check_role(role)
    with transaction.atomic():
        if membership.role == Role.OWNER and role != Role.OWNER:
            _keep_an_owner(membership)
        membership.role = role
        membership.save(update_fields=["role"])


def membership_remove(membership: Membership, *, by: Membership | None = None) -> None:
    """Remove a member (their keys stay, billed to the organisation, until revoked). If it was their default
    organisation, another of theirs (or none) becomes the default, and every process re-checks their keys."""
    require_manager(by, membership.role)
    user = membership.user
    with transaction.atomic():
        if membership.role == Role.OWNER:
            _keep_an_owner(membership)
        membership.delete()
        user_settle_default_organisation(user)


def user_settle_default_organisation(user: User) -> None:
    """Make the user's default organisation one of theirs: kept if still a membership, else their oldest
    membership's (or none), and then every process re-checks their keys (which follow it)."""
    organisation_ids = list(Membership.objects.filter(user=user).order_by("created_at", "id")
                            .values_list("organisation_id", flat=True))
    if user.organisation_id in organisation_ids:
        return
    user.organisation_id = organisation_ids[0] if organisation_ids else None
    user.save(update_fields=["organisation"])
    transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"user_id": user.id}))


def require_manager(by: Membership | None, *roles: str) -> None:
    """Refuse unless `by` (None: an operator) may manage the organisation, and the owner role if it is among roles."""
    if by is None:
        return
    if not by.manages:
        raise PermissionDenied("Only the organisation's owners and admins may do this.")
    if Role.OWNER in roles and by.role != Role.OWNER:
        raise PermissionDenied("Only an owner may grant, change or remove the owner role.")


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}; use {', '.join(Role.values)}.")


def _keep_an_owner(membership: Membership) -> None:
    # Lock the owners' rows, so two owners demoting each other at once cannot leave none.
    owners = Membership.objects.select_for_update().filter(organisation_id=membership.organisation_id, role=Role.OWNER)
    if not set(owners.values_list("pk", flat=True)) - {membership.pk}:
        raise PermissionDenied("An organisation keeps at least one owner: make someone else owner first.")


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
