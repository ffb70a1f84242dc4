import fnmatch

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from apps.accounts.models import Membership
from apps.common.client_address import MAX_ALLOWED_IPS, parse_networks, validate_allowed_ips  # noqa: F401 (re-exported)
from apps.common.personal_data import PersonalDataFields
from apps.common.rates import LimitFields, validate_model_limits

# What a key may do. /v1: chat → /v1/chat/completions, embeddings → /v1/embeddings,
# models:read → /v1/models*; the management API: usage:read, keys:manage.
SCOPES = ("chat", "embeddings", "models:read", "usage:read", "keys:manage")
DEFAULT_SCOPES = ("chat", "embeddings", "models:read")


def default_scopes() -> list[str]:
    return list(DEFAULT_SCOPES)


def validate_scopes(value) -> None:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValidationError(f"Scopes are a list of names from {', '.join(SCOPES)}.")
    unknown = sorted(set(value) - set(SCOPES))
    if unknown:
        raise ValidationError(f"Unknown scope(s) {', '.join(unknown)}; use {', '.join(SCOPES)}.")


def validate_allowed_models(value) -> None:
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise ValidationError('allowed_models is a list of model globs or names, e.g. ["gigachat/*"].')


def holds_keys_in(organisation_id, role: str | None, default_organisation_id) -> bool:
    """May a user hold working keys in an organisation? Yes while a member in a role other than billing viewer
    (`role`: their membership's, None if they are none); a user from before memberships, in their default
    organisation. A key of no organisation: yes. One rule for issuing (services) and the lookup (selectors)."""
    if organisation_id is None:
        return True
    if role is None:
        return organisation_id == default_organisation_id
    return role != Membership.Role.BILLING_VIEWER


class ApiKey(LimitFields, PersonalDataFields):
    """A client key `xr-<prefix>-<secret>`. Only the prefix and a SHA-256 of the whole key are stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    # PROTECT: deleting a tenant must not turn its refused keys into keys of no tenant (deactivate it instead).
    organisation = models.ForeignKey("accounts.Organisation", null=True, blank=True, on_delete=models.PROTECT)
    # The key that created this one (None: created by a person or a command). Revoking a key revokes its
    # children; deleting it deletes them, so no child outlives the key whose limits it was cut from.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children",
                               editable=False)
    # The first key of its rotation line (key_rotate): rotated siblings share its limits and budget, so a
    # rotation neither resets a month's spend nor doubles a limit during the grace period. None: an original.
    lineage = models.BigIntegerField(null=True, blank=True, editable=False, db_index=True)
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=default_scopes, blank=True, validators=[validate_scopes],
                              help_text=f"What the key may do: any of {', '.join(SCOPES)}.")
    allowed_models = models.JSONField(
        default=list, blank=True, validators=[validate_allowed_models],
        help_text='Model globs such as "gigachat/*", or the exact name of a rule or alias; empty allows every model.',
    )
    residency = models.CharField(
        max_length=8, blank=True, help_text="If set (e.g. RU), requests never leave models of this jurisdiction."
    )
    allowed_ips = models.JSONField(
        default=list, blank=True, validators=[validate_allowed_ips],
        help_text='Client addresses the key works from, as CIDRs ("203.0.113.0/24", "2001:db8::/32"); empty: any.',
    )
    monthly_budget = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="Roubles per calendar month (TIME_ZONE), VAT included; requests beyond it are refused. Empty: none.")
    model_limits = models.JSONField(
        default=dict, blank=True, validators=[validate_model_limits],
        help_text='Limits of this key on given models, beside its own: {"<model id>": {"requests_rate": "10/min", '
                  '"tokens_rate": "20000/min", "max_concurrent": 2, "tokens_per_day": 0, "tokens_per_month": 0}}.')
    cost_centre = models.CharField(max_length=64, blank=True,
                                   help_text="A cost centre or project: statements break spend down by it.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("issue_for_others", "Can issue API keys for other users")]

    def __str__(self):
        return f"{self.name} (xr-{self.prefix}-…)"

    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def held_by_member(self) -> bool:
        """False while its user may not hold keys in its organisation (a leaver, a billing viewer): the key
        lookup refuses it then. Reads `member_role` where selectors.keys_visible_to annotated it."""
        role = getattr(self, "member_role", None)
        if not hasattr(self, "member_role"):
            role = Membership.objects.filter(user_id=self.user_id, organisation_id=self.organisation_id).values_list(
                "role", flat=True).first()
        return holds_keys_in(self.organisation_id, role, self.user.organisation_id)

    @classmethod
    def subtree_ids(cls, key_id: int) -> list[int]:
        """The key and every key created from it, recursively (one query per generation)."""
        ids, frontier = [key_id], [key_id]
        while frontier:
            frontier = list(cls.objects.filter(parent_id__in=frontier).exclude(id__in=ids).values_list("id", flat=True))
            ids.extend(frontier)
        return ids

    def allows(self, model: str) -> bool:
        return not self.allowed_models or any(fnmatch.fnmatchcase(model, pattern) for pattern in self.allowed_models)
