import hashlib

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from apps.common.client_address import validate_allowed_ips
from apps.common.personal_data import PersonalDataFields
from apps.common.rates import LimitFields


def validate_model_globs(value) -> None:
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise ValidationError('A list of model globs or names, e.g. ["gigachat/*"].')


class Organisation(LimitFields, PersonalDataFields):
    """A tenant: usage, budgets and cache scopes hang off it; people join it through memberships."""

    name = models.CharField(max_length=200, unique=True)
    # Inactive: every key of the organisation and of its members is refused (change it through
    # services.organisation_set_active, which tells every gateway process).
    is_active = models.BooleanField(default=True)
    # The policy: every key created in the organisation stays within it (apps.keys.services.key_create).
    allowed_models = models.JSONField(
        default=list, blank=True, validators=[validate_model_globs],
        help_text='Policy: model globs ("gigachat/*") or exact rule/alias names its keys may use; empty allows every '
                  "model. Bounds keys created from now on.",
    )
    residency = models.CharField(
        max_length=8, blank=True,
        help_text="Policy: if set (e.g. RU), every key created in the organisation is limited to this jurisdiction.",
    )
    # Checked on every request of its keys, OAuth tokens and JWTs (the client address, apps.common.client_address),
    # on /v1 and the management API, besides a key's own allow-list.
    allowed_ips = models.JSONField(
        default=list, blank=True, validators=[validate_allowed_ips],
        help_text='Networks (CIDRs) its keys and tokens may be used from, e.g. ["203.0.113.0/24"]; empty: any. '
                  "Applies at once to every key, besides a key's own list.",
    )
    monthly_budget = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="Roubles per calendar month (TIME_ZONE), VAT included; requests beyond it are refused. Empty: none.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class User(AbstractUser):
    # Kept beside the memberships: keys created without naming an organisation land here, and the key
    # cache refuses a user's keys while it is inactive (apps.keys). Always one of the user's memberships.
    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.SET_NULL, related_name="default_for",
        help_text="The user's default organisation (one they are a member of): keys created without naming one go there.",
    )


class Membership(models.Model):
    """A user's place in an organisation. Change it through apps.accounts.services (membership_*)."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"  # everything, including the owner role itself
        ADMIN = "admin", "Admin"  # the policy and members (not owners)
        DEVELOPER = "developer", "Developer"  # their own keys
        BILLING_VIEWER = "billing_viewer", "Billing viewer"  # usage and spend, no keys

    MANAGERS = frozenset({Role.OWNER, Role.ADMIN})  # may change the policy and the members

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.DEVELOPER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organisation"], name="one_membership_per_user_and_organisation")]

    def __str__(self):
        return f"{self.user} in {self.organisation} ({self.get_role_display()})"

    @property
    def manages(self) -> bool:
        return self.role in self.MANAGERS


class Invitation(models.Model):
    """An e-mailed link that makes its holder a member (signing them up if needed). Only a SHA-256 of the
    link's token is stored; the link works once, until expires_at. Change it through apps.accounts.services."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Membership.Role.choices, default=Membership.Role.DEVELOPER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self):
        return f"{self.email} to {self.organisation} ({self.get_role_display()})"

    def is_usable(self, now) -> bool:
        return self.accepted_at is None and now < self.expires_at

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()
