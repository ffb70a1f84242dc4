"""Writes on API keys. The plaintext key exists only in the return value of key_create.

Every write tells the key caches of every process, after commit, which keys changed (one
event naming them), so a revocation takes effect everywhere within a second.
"""

import datetime
import fnmatch
import hashlib
import secrets
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import Membership, User
from apps.audit.services import audit
from apps.common import bus
from apps.common.client_address import canonical_networks
from apps.common.personal_data import PD_FIELDS, RANK, validate_terms
from apps.common.rates import INT_LIMIT_FIELDS, KEY_LIMIT_FIELDS, parse_rate, validate_model_limits, validate_rate

from .models import (
    DEFAULT_SCOPES,
    SCOPES,
    ApiKey,
    holds_keys_in,
    parse_networks,
    validate_allowed_models,
    validate_scopes,
)

KEY_PREFIX = "xr"
KEYS_TOPIC = "keys"
UNSET = object()  # "not given": a key-created key then inherits its parent's limit
GLOB_CHARS = frozenset("*?[")
MAX_ROTATION_GRACE = datetime.timedelta(days=7)
MARK_CHUNK = 5000  # key ids per UPDATE (a statement takes at most 65535 parameters)


def hash_key(plaintext: str) -> str:
    # The secret part has 190+ bits of entropy, so a fast hash is enough (as GitHub and Stripe do);
    # a slow KDF would cost milliseconds on every cache miss for no gain.
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _announce(key_ids) -> None:
    ids = list(key_ids)
    transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"key_ids": ids}))


def key_create(*, user, name: str, organisation=None, allowed_models=UNSET, residency=UNSET, expires_at=UNSET,
               scopes=UNSET, allowed_ips=UNSET, parent: ApiKey | None = None, issued_by=None, cost_centre: str = "",
               model_limits=UNSET, pd_policy: str = "off", pd_names: bool = False, blocked_terms=(), **limits):
    """Create a key; returns (ApiKey, plaintext). The plaintext is never stored or shown again.

    parent: the key this request was authenticated with, if any. Such a key needs the scope
    `keys:manage`, and the new key is a subset of it: scopes, allowed models, residency, expiry,
    allowed IPs and organisation; a limit not given is inherited (default scopes: the defaults ∩ the parent's).
    allowed_ips: CIDRs the key may be used from (empty: any).
    limits: rate limits, quotas and the budget (apps.common.rates.KEY_LIMIT_FIELDS: requests_rate="50/min",
    tokens_rate, max_concurrent, tokens_per_day, tokens_per_month, monthly_budget=Decimal("1000") roubles a
    month); a key-created key's are within its parent's.
    model_limits: the key's limits on given models ({"<model id>": {"requests_rate": "10/min", ...}},
    apps.common.rates.parse_model_limits); a key-created key's are within its parent's there too.
    organisation (default: the user's default organisation; always one the user is a member of): its policy
    bounds the key's allowed models and residency, however the key is made; a limit not given or empty
    takes the policy's.
    cost_centre: a cost centre or project statements break spend down by.
    pd_policy, pd_names, blocked_terms: the key's personal-data policy (apps.common.personal_data); a
    key-created key's is at least its parent's (the stricter mode, names if either, both term lists).
    issued_by: the acting person (None for the command line). Issuing for someone else needs the
    permission keys.issue_for_others.
    Refusals raise PermissionDenied, bad values ValidationError.
    """
    if unknown := set(limits) - set(KEY_LIMIT_FIELDS):
        raise TypeError(f"key_create() got unexpected arguments {sorted(unknown)}")
    actor = parent.user if parent is not None else issued_by
    organisation = organisation if organisation is not None else getattr(user, "organisation", None)
    _check_issuer(actor, user, organisation)
    with transaction.atomic():
        if parent is not None:
            # Re-read and lock the parent: a revocation that committed after the caller loaded it is seen
            # here, and one that starts now waits for this key and then revokes it too (key_revoke).
            parent = ApiKey.objects.select_for_update().filter(pk=parent.pk).first()
            if parent is None:
                raise PermissionDenied("The key making this request no longer exists.")
            scopes, allowed_models, residency, expires_at, allowed_ips, limits = _within_parent(
                parent, scopes, allowed_models, residency, expires_at, allowed_ips, organisation, limits)
            model_limits = _model_limits_within(parent, model_limits)
        model_limits = {} if model_limits is UNSET or model_limits is None else model_limits
        validate_model_limits(model_limits)
        if organisation is not None:
            allowed_models, residency = _within_policy(organisation, allowed_models, residency)
        pd_policy, pd_names, blocked_terms = _personal_data(parent, pd_policy, pd_names, blocked_terms)
        scopes = list(DEFAULT_SCOPES) if scopes is UNSET else _as_list(scopes)
        validate_scopes(scopes)
        scopes = [s for s in SCOPES if s in scopes]  # one spelling and order, whatever the caller sent
        allowed_models = [] if allowed_models is UNSET or allowed_models is None else _as_list(allowed_models)
        validate_allowed_models(allowed_models)
        allowed_ips = [] if allowed_ips is UNSET or allowed_ips is None else _canonical_networks(allowed_ips)
        for field in ("requests_rate", "tokens_rate"):
            if isinstance(limits.get(field), str):
                validate_rate(limits[field])
        if limits.get("monthly_budget") not in (None, UNSET):
            limits["monthly_budget"] = _budget(limits["monthly_budget"])
        prefix = secrets.token_hex(4)
        plaintext = f"{KEY_PREFIX}-{prefix}-{secrets.token_urlsafe(32)}"
        key = ApiKey.objects.create(
            user=user,
            organisation=organisation,
            parent=parent,
            name=name,
            prefix=prefix,
            hashed_key=hash_key(plaintext),
            scopes=scopes,
            allowed_models=allowed_models,
            residency="" if residency is UNSET or residency is None else residency,
            expires_at=None if expires_at is UNSET else expires_at,
            allowed_ips=allowed_ips,
            cost_centre=cost_centre or "",
            model_limits=model_limits,
            pd_policy=pd_policy,
            pd_names=pd_names,
            blocked_terms=blocked_terms,
            **{field: value for field, value in limits.items() if value is not UNSET},
        )
        audit("key.created", target=key, actor=actor, detail={
            "user_id": user.pk, "organisation_id": getattr(organisation, "pk", None), "scopes": scopes,
            **({"via_key": f"xr-{parent.prefix}"} if parent is not None else {})})
    return key, plaintext


def _personal_data(parent: ApiKey | None, mode: str, names: bool, terms) -> tuple[str, bool, list]:
    """A new key's personal-data policy, never weaker than its parent's (ValidationError for bad values)."""
    if mode not in RANK:
        raise ValidationError({"pd_policy": f"Use one of {', '.join(RANK)}."})
    terms = list(terms or [])
    validate_terms(terms)
    if parent is not None:
        mode = max(mode, parent.pd_policy, key=RANK.__getitem__)
        names = names or parent.pd_names
        terms = list(dict.fromkeys([*parent.blocked_terms, *terms]))
    return mode, names, terms


def _budget(value) -> Decimal:
    """A monthly budget as stored: roubles, at least 0, at most two decimal places (ValidationError otherwise)."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError({"monthly_budget": f"{value!r} is not an amount of roubles."}) from None
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")) or amount >= Decimal(10) ** 12:
        raise ValidationError({"monthly_budget": f"{value} is not a budget: roubles from 0, to the kopeck "
                                                 "(at most two decimal places)."})
    return amount


def _canonical_networks(allowed_ips) -> list[str]:
    """One spelling per network ("10.0.0.0/8", "2001:db8::/32"), duplicates dropped; ValidationError on a bad entry."""
    return canonical_networks(_as_list(allowed_ips))


def _check_issuer(actor, user, organisation) -> None:
    """A key for someone else is issued only by holders of keys.issue_for_others (actor None: the command
    line); and only in an organisation of the user's."""
    if actor is not None and not actor.has_perm("keys.issue_for_others") and actor.pk != user.pk:
        raise PermissionDenied("Creating a key for another user needs the permission keys.issue_for_others.")
    _check_member(user, organisation)


def _check_member(user, organisation) -> None:
    """A key's organisation is one where its user holds keys (models.holds_keys_in; the key lookup refuses
    it otherwise), whoever issues it."""
    if organisation is None:
        return
    # From the database, not the instance: a membership may have changed since `user` was loaded.
    membership = user.memberships.filter(organisation=organisation).values_list("role", flat=True).first()
    default = get_user_model().objects.filter(pk=user.pk).values_list("organisation_id", flat=True).first()
    if not holds_keys_in(organisation.pk, membership, default):
        why = "a billing viewer" if membership else "not a member"
        raise PermissionDenied(f"{user.username} is {why} in {organisation.name}: a key there would be refused.")


def _as_list(value):
    return list(value) if isinstance(value, (tuple, set, frozenset)) else value


def _within_parent(parent: ApiKey, scopes, allowed_models, residency, expires_at, allowed_ips, organisation, limits):
    """The one check that a key-created key is no wider than its parent (see key_create)."""
    if not parent.is_active():
        raise PermissionDenied("The key making this request is revoked or expired.")
    if "keys:manage" not in parent.scopes:
        raise PermissionDenied("This API key lacks the scope 'keys:manage' needed to create keys.")
    if parent.organisation_id and (organisation is None or organisation.pk != parent.organisation_id):
        raise PermissionDenied("A key-created key belongs to its parent's organisation.")
    return _limits_within(parent, scopes, allowed_models, residency, expires_at, allowed_ips, limits)


def _limits_within(parent: ApiKey, scopes, allowed_models, residency, expires_at, allowed_ips, limits: dict):
    """The limits of a key created from `parent` (on creation and on every later edit): within the parent's."""
    scopes, allowed_models = _as_list(scopes), _as_list(allowed_models)
    if scopes is UNSET:
        scopes = [s for s in DEFAULT_SCOPES if s in parent.scopes]
    else:
        validate_scopes(scopes)
        if wider := sorted(set(scopes) - set(parent.scopes)):
            raise PermissionDenied(f"A key cannot grant scopes it does not have: {', '.join(wider)}.")

    if allowed_models is UNSET:
        allowed_models = list(parent.allowed_models)
    elif parent.allowed_models:
        if not allowed_models:
            raise PermissionDenied("An empty allowed_models allows every model, which the creating key may not use; "
                                   f"name models within {parent.allowed_models}.")
        validate_allowed_models(allowed_models)
        wider = [m for m in allowed_models if not any(_covers(p, m) for p in parent.allowed_models)]
        if wider:
            raise PermissionDenied(f"allowed_models {wider} go beyond the creating key's {parent.allowed_models}.")
        # A glob-free entry names a rule or alias too (routing.access), which the parent reaches only by
        # that exact entry: one its globs merely match is kept to the model of that name.
        # (A parent holding "*" may use every target, so every rule and alias: nothing to keep.)
        if "*" not in parent.allowed_models:
            allowed_models = [m if m in parent.allowed_models or not GLOB_CHARS.isdisjoint(m) else _model_only(m)
                              for m in allowed_models]

    if residency is UNSET:
        residency = parent.residency
    elif parent.residency and residency != parent.residency:
        raise PermissionDenied(f"The creating key is limited to residency {parent.residency}; so is every key it creates.")

    if expires_at is UNSET:
        expires_at = parent.expires_at
    elif parent.expires_at and (expires_at is None or expires_at > parent.expires_at):
        raise PermissionDenied(f"The creating key expires at {parent.expires_at.isoformat()}; a key it creates must "
                               "expire no later.")

    if allowed_ips is UNSET:
        allowed_ips = list(parent.allowed_ips)
    elif parent.allowed_ips:
        networks, outer = parse_networks(_as_list(allowed_ips)), parse_networks(parent.allowed_ips)
        wider = [str(n) for n in networks if not any(n.version == o.version and n.subnet_of(o) for o in outer)]
        if not networks or wider:
            raise PermissionDenied(f"allowed_ips {wider or 'empty (any address)'} go beyond the creating key's "
                                   f"{parent.allowed_ips}.")
    return scopes, allowed_models, residency, expires_at, allowed_ips, _rate_limits_within(parent, limits)


def _rate_limits_within(parent: ApiKey, limits: dict) -> dict:
    """Part of _limits_within: each of the parent's rate limits, quotas and its budget bounds the child's (not
    given: the parent's)."""
    limits = dict(limits)
    for field in KEY_LIMIT_FIELDS:
        bound, value = getattr(parent, field), limits.get(field, UNSET)
        if value is UNSET:
            limits[field] = bound
            continue
        if bound in ("", None):
            continue
        if value in ("", None):
            raise PermissionDenied(f"The creating key has {field} {bound}; a key it creates cannot be unlimited.")
        if field == "monthly_budget":
            value = limits[field] = _budget(value)
        try:
            wider = not parse_rate(value).within(parse_rate(bound)) if field.endswith("_rate") else value > bound
        except ValueError as exc:
            raise ValidationError({field: str(exc)}) from None
        if wider:
            raise PermissionDenied(f"{field} {value} goes beyond the creating key's {bound}.")
    return limits


def _model_limits_within(parent: ApiKey, model_limits) -> dict:
    """A key-created key's limits per model: on each model its parent limits, each of the parent's limits
    bounds the child's (not given: the parent's). Models the parent does not limit are the child's own
    business (the parent's limits on the key as a whole still bound it)."""
    child = {} if model_limits is UNSET or model_limits is None else model_limits
    validate_model_limits(child)
    merged = {model: dict(spec) for model, spec in child.items()}
    for model, bounds in (parent.model_limits or {}).items():
        spec = merged.setdefault(model, {})
        for field, bound in bounds.items():
            value = spec.get(field, UNSET)
            if value is UNSET:
                spec[field] = bound
            elif _unlimited(field, bound):
                continue
            elif _unlimited(field, value):
                raise PermissionDenied(f"The creating key has {field} {bound} on {model}; a key it creates cannot "
                                       "be unlimited there.")
            elif not parse_rate(value).within(parse_rate(bound)) if field.endswith("_rate") else value > bound:
                raise PermissionDenied(f"{field} {value} on {model} goes beyond the creating key's {bound}.")
    return merged


def _unlimited(field: str, value) -> bool:
    return value in ("", None) or (field in INT_LIMIT_FIELDS and value == 0)


def _within_policy(organisation, allowed_models, residency):
    """The one check that a key is within its organisation's policy (see key_create)."""
    allowed_models = _as_list(allowed_models)
    if organisation.allowed_models:
        if allowed_models is UNSET or not allowed_models:  # "every model" is not the organisation's to give
            allowed_models = list(organisation.allowed_models)
        else:
            validate_allowed_models(allowed_models)
            wider = [m for m in allowed_models if not any(_covers(p, m) for p in organisation.allowed_models)]
            if wider:
                raise PermissionDenied(f"allowed_models {wider} go beyond the policy of {organisation.name}: "
                                       f"{organisation.allowed_models}.")
            # As for a parent key: an exact entry the policy only matches by a glob names the model alone.
            if "*" not in organisation.allowed_models:
                allowed_models = [m if m in organisation.allowed_models or not GLOB_CHARS.isdisjoint(m)
                                  else _model_only(m) for m in allowed_models]
    if organisation.residency:
        if residency is UNSET or not residency:
            residency = organisation.residency
        elif residency != organisation.residency:
            raise PermissionDenied(f"{organisation.name} limits its keys to residency {organisation.residency}.")
    return allowed_models, residency


def _covers(pattern: str, entry: str) -> bool:
    """Does `pattern` (an allowed_models entry of a parent key or a policy) allow everything `entry` allows?

    Conservative: equal entries; a glob-free entry the pattern matches; or a pattern of the form
    `prefix*` and an entry (glob or not) starting with that prefix. Other glob pairs are refused."""
    if pattern == entry:
        return True
    if GLOB_CHARS.isdisjoint(pattern):
        return False  # an exact parent entry covers only itself (it may name a rule or alias)
    if GLOB_CHARS.isdisjoint(entry):
        return fnmatch.fnmatchcase(entry, pattern)
    head = pattern[:-1]
    return pattern.endswith("*") and GLOB_CHARS.isdisjoint(head) and entry.startswith(head)


def _model_only(entry: str) -> str:
    """A glob matching exactly the model `entry` (one character as a class: "gpt-4[o]"), so it names no rule."""
    for i in range(len(entry) - 1, -1, -1):
        if entry[i].isalnum():
            return f"{entry[:i]}[{entry[i]}]{entry[i + 1:]}"
    raise PermissionDenied(f"allowed_models entry {entry!r} is not a model name.")


def key_revoke(key: ApiKey) -> None:
    """Revoke a key and every key created from it, recursively (key_rotate moves them to the new key instead).

    Generation by generation, each UPDATE locks its rows before the next generation is read: a key
    being created under one of them (key_create locks its parent) is either committed and found
    by that read, or waits and then sees its parent revoked."""
    now = timezone.now()
    with transaction.atomic():
        ids, frontier = [], [key.id]
        while frontier:
            ApiKey.objects.filter(id__in=frontier, revoked_at__isnull=True).update(revoked_at=now)
            ids.extend(frontier)
            frontier = list(ApiKey.objects.filter(parent_id__in=frontier).exclude(id__in=ids)
                            .values_list("id", flat=True))
        _announce(ids)
        audit("key.revoked", target=key, detail={"keys_revoked": len(ids)})
    if key.revoked_at is None:
        key.revoked_at = now


def key_rotate(key: ApiKey, *, grace: datetime.timedelta, by=None) -> tuple[ApiKey, str]:
    """Replace a key by a sibling with the same rights and a new secret; returns (new key, plaintext), shown once.

    The sibling has the key's user, organisation, parent, scopes, allowed models, residency, allowed IPs and
    expiry. The old key keeps working for `grace` (0 to 7 days; 0: refused at once), then is refused: its
    expires_at becomes now + grace (never later than it was), in every process's cache. Keys created from
    the old key move under the new one, so revoking the new key still revokes them.
    by: the acting person (None: the command line). The new secret acts as the key's user, so rotating
    someone else's key needs keys.issue_for_others, as issuing one does. Refusals raise PermissionDenied,
    a grace outside 0..7 days or a key already revoked or expired ValidationError."""
    if not isinstance(grace, datetime.timedelta) or not datetime.timedelta(0) <= grace <= MAX_ROTATION_GRACE:
        raise ValidationError(f"The grace period is from 0 to 7 days ({int(MAX_ROTATION_GRACE.total_seconds())} "
                              "seconds); the old key stops working when it ends.")
    if by is not None and by.pk != key.user_id and not by.has_perm("keys.issue_for_others"):
        raise PermissionDenied("Only the key's own user may rotate it (the new secret acts as them); "
                               "revoke it instead.")
    with transaction.atomic():
        # Lock the parent first, then the key, in key_revoke's order: a revocation running now either
        # finished (and is seen here) or waits and then finds the new key under its parent.
        if key.parent_id is not None:
            ApiKey.objects.select_for_update().filter(pk=key.parent_id).first()
        old = ApiKey.objects.select_for_update().filter(pk=key.pk).first()
        if old is None or not old.is_active():
            raise ValidationError("A revoked, expired or deleted key cannot be rotated; create a new one.")
        prefix = secrets.token_hex(4)
        plaintext = f"{KEY_PREFIX}-{prefix}-{secrets.token_urlsafe(32)}"
        new = ApiKey.objects.create(
            user_id=old.user_id, organisation_id=old.organisation_id, parent_id=old.parent_id, name=old.name,
            prefix=prefix, hashed_key=hash_key(plaintext), scopes=old.scopes, allowed_models=old.allowed_models,
            residency=old.residency, allowed_ips=old.allowed_ips, expires_at=old.expires_at,
            lineage=old.lineage or old.pk, model_limits=old.model_limits, cost_centre=old.cost_centre,
            **{field: getattr(old, field) for field in (*KEY_LIMIT_FIELDS, *PD_FIELDS)},  # never loses its redaction
        )
        ApiKey.objects.filter(parent_id=old.pk).update(parent=new)
        ends = timezone.now() + grace
        if old.expires_at is None or ends < old.expires_at:
            old.expires_at = ends
            old.save(update_fields=["expires_at"])
        _announce([old.pk])
        audit("key.rotated", target=old, actor=by, detail={"new_key": f"xr-{new.prefix}", "grace_seconds": int(grace.total_seconds())})
    key.expires_at = old.expires_at
    return new, plaintext


def key_update(key: ApiKey, fields: list[str], *, actor=None) -> None:
    """Save edited fields of a key (the admin) and tell every process.

    Moving a key to another user or organisation is issuing one: it needs keys.issue_for_others, and the
    organisation must be one of the user's.
    A key created by a key stays within its parent's limits (PermissionDenied otherwise)."""
    if actor is not None and {"user", "organisation"} & set(fields) and not actor.has_perm("keys.issue_for_others"):
        raise PermissionDenied("Moving a key to another user or organisation needs the permission "
                               "keys.issue_for_others.")
    if {"user", "organisation"} & set(fields):
        _check_member(key.user, key.organisation)
    limits = {"scopes", "allowed_models", "residency", "expires_at", "allowed_ips", "model_limits", *KEY_LIMIT_FIELDS}
    if "allowed_ips" in fields:
        key.allowed_ips = _canonical_networks(key.allowed_ips)
    with transaction.atomic():
        if key.parent_id is not None and limits & set(fields):
            parent = ApiKey.objects.get(pk=key.parent_id)
            key.scopes, key.allowed_models, key.residency, key.expires_at, key.allowed_ips, rates = _limits_within(
                parent, key.scopes, key.allowed_models, key.residency, key.expires_at, key.allowed_ips,
                {field: getattr(key, field) for field in KEY_LIMIT_FIELDS})
            for field, value in rates.items():
                setattr(key, field, value)
            key.model_limits = _model_limits_within(parent, key.model_limits)
        key.save(update_fields=fields)
        _announce([key.id])


def key_mark_used(key_ids, at) -> None:
    """Set last_used_at of these keys to `at` (apps.keys.last_used calls it with a batch), never backwards
    (processes flush at their own pace). No announcement: the key caches hold nothing of it."""
    ids = sorted(key_ids)  # one lock order for every process
    for start in range(0, len(ids), MARK_CHUNK):
        (ApiKey.objects.filter(id__in=ids[start:start + MARK_CHUNK])
         .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=at)).update(last_used_at=at))


def key_delete(key: ApiKey) -> None:
    """Delete a key and, by cascade, the keys created from it."""
    with transaction.atomic():
        ids = ApiKey.subtree_ids(key.id)
        audit("key.deleted", target=key, detail={"keys_deleted": len(ids)})
        key.delete()
        _announce(ids)


PLAYGROUND_KEY_NAME = "playground"
PLAYGROUND_KEY_LIFETIME = datetime.timedelta(hours=1)
PLAYGROUND_KEY_REUSE_MARGIN = datetime.timedelta(minutes=5)  # a key about to expire would cut the next chat


def key_for_playground(user) -> ApiKey:
    """The person's `playground` key, billed by the portal's playground like any other key.

    One still valid for a few minutes more is reused; otherwise a new one is created, able to chat
    only, expiring in an hour, in their default organisation (or another where they may issue
    keys), within its policy. It is listed with their other keys. PermissionDenied when they may
    issue keys in no active organisation."""
    with transaction.atomic():
        # One person, one playground key at a time: two sockets opening together must not make two.
        User.objects.select_for_update().filter(pk=user.pk).first()
        reusable = (ApiKey.objects.filter(user=user, name=PLAYGROUND_KEY_NAME, parent__isnull=True,
                                          revoked_at__isnull=True,
                                          expires_at__gt=timezone.now() + PLAYGROUND_KEY_REUSE_MARGIN)
                    .select_related("organisation").order_by("-expires_at").first())
        if reusable is not None and (reusable.organisation is None or reusable.organisation.is_active):
            return reusable
        memberships = (Membership.objects.filter(user=user, organisation__is_active=True)
                       .exclude(role=Membership.Role.BILLING_VIEWER).select_related("organisation"))
        organisations = sorted((m.organisation for m in memberships),
                               key=lambda o: (o.pk != user.organisation_id, o.name))
        if not organisations:
            raise PermissionDenied("You may create keys in no organisation, so the playground has no key to bill.")
        key, _plaintext = key_create(user=user, organisation=organisations[0], issued_by=user,
                                     name=PLAYGROUND_KEY_NAME, scopes=["chat"],
                                     expires_at=timezone.now() + PLAYGROUND_KEY_LIFETIME)
    return key
