"""Prices with effective dates, VAT rates, daily roll-ups of usage, and budget notices.

Money is Decimal throughout (roubles): costs keep 6 decimal places, statement lines are rounded to
the kopeck (apps/billing/money.py).
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.common.crypto import EncryptedJSONField

DEFAULT_THRESHOLDS = [50, 80, 100]
MAX_THRESHOLDS = 10


def validate_thresholds(value) -> None:
    if (not isinstance(value, list) or len(value) > MAX_THRESHOLDS
            or not all(isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= 1000 for t in value)):
        raise ValidationError(f"A list of at most {MAX_THRESHOLDS} whole percentages from 1 to 1000, e.g. [50, 80, 100].")


class VatRate(models.Model):
    """Russian VAT, effective-dated: a rate applies from its date until the next row's."""

    effective_from = models.DateField(unique=True)
    rate = models.DecimalField(max_digits=5, decimal_places=2, validators=[MinValueValidator(0), MaxValueValidator(100)],
                               help_text="Percent, e.g. 22.")

    class Meta:
        ordering = ["-effective_from"]
        verbose_name = "VAT rate"

    def __str__(self):
        return f"{self.rate}% from {self.effective_from}"


def _price_field(**kwargs):
    return models.DecimalField(max_digits=12, decimal_places=6, validators=[MinValueValidator(0)], **kwargs)


class ModelPrice(models.Model):
    """A provider model's price in roubles per 1,000 tokens from `effective_from` (in TIME_ZONE) until the
    next row's date. The gateway reads the price in effect today, VAT included, from the ProviderModel's
    own price fields, which apps.billing.services.current_prices_apply keeps equal to it; usage rows keep
    the price they were recorded with."""

    model = models.ForeignKey("providers.ProviderModel", on_delete=models.CASCADE, related_name="prices")
    effective_from = models.DateField()
    input_price = _price_field()
    output_price = _price_field()
    cached_input_price = _price_field(null=True, blank=True, help_text="Empty = cached prompt tokens are free.")
    includes_vat = models.BooleanField(default=True, help_text="Whether these prices include VAT (Yandex's do).")
    note = models.CharField(max_length=200, blank=True, help_text='Where the price comes from ("guess" if nowhere).')
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-effective_from"]
        constraints = [models.UniqueConstraint(fields=["model", "effective_from"], name="one_price_per_model_and_date")]

    def __str__(self):
        return f"{self.model} from {self.effective_from}"


class DailyRollup(models.Model):
    """Usage summed per day (TIME_ZONE), organisation, key, cost centre, provider and model. Written only by
    apps.billing.services.rollup_day, which replaces a day's rows whole; usage retention never touches it."""

    day = models.DateField()
    organisation_id = models.BigIntegerField(null=True)
    api_key_id = models.BigIntegerField(null=True)
    cost_centre = models.CharField(max_length=64, blank=True)
    provider = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=200, blank=True)
    requests = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=6, default=Decimal(0), help_text="Roubles, VAT included.")

    class Meta:
        ordering = ["-day"]
        indexes = [models.Index(fields=["organisation_id", "day"]), models.Index(fields=["day"]),
                   models.Index(fields=["api_key_id", "day"])]
        permissions = [("view_statement", "Can view statements, spend and top spenders of every organisation")]

    def __str__(self):
        return f"{self.day} {self.organisation_id} {self.provider}/{self.model}"


class RollupDay(models.Model):
    """When a day was last rolled up. A day counts as final (readers take its roll-ups instead of raw rows)
    only if it was rolled up after it ended."""

    day = models.DateField(primary_key=True)
    computed_at = models.DateTimeField()
    rows = models.PositiveIntegerField(default=0)


class BillingSettings(models.Model):
    """An organisation's budget notifications: thresholds (percent of monthly_budget, for the organisation
    and each of its keys) and a webhook. The webhook secret is stored encrypted."""

    organisation = models.OneToOneField("accounts.Organisation", on_delete=models.CASCADE,
                                        related_name="billing_settings")
    thresholds = models.JSONField(default=list, blank=True, validators=[validate_thresholds],
                                  help_text="Percent of the monthly budget, e.g. [50, 80, 100]; empty = 50, 80, 100.")
    webhook_url = models.URLField(max_length=500, blank=True, help_text="https; budget notices are POSTed here.")
    webhook_secret = EncryptedJSONField(blank=True, default=dict, help_text="{'secret': …}: signs the webhook.")

    class Meta:
        verbose_name_plural = "billing settings"

    def __str__(self):
        return f"billing settings of {self.organisation_id}"

    def threshold_list(self) -> list[int]:
        return sorted(set(self.thresholds)) or DEFAULT_THRESHOLDS


class BudgetNotice(models.Model):
    """A budget threshold crossed: one row per (scope, month, threshold), made before anything is sent, so
    each is notified once however many workers run the check."""

    ORGANISATION, KEY = "organisation", "key"
    scope = models.CharField(max_length=16, choices=[(ORGANISATION, "organisation"), (KEY, "key")])
    scope_id = models.BigIntegerField()
    organisation_id = models.BigIntegerField(null=True)
    month = models.DateField(help_text="The first day of the month.")
    threshold = models.PositiveSmallIntegerField()
    spend = models.DecimalField(max_digits=20, decimal_places=6)
    budget = models.DecimalField(max_digits=14, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)
    emailed = models.PositiveIntegerField(default=0, help_text="Recipients the e-mail went to.")
    webhook_status = models.CharField(max_length=200, blank=True)
    webhook_delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["scope", "scope_id", "month", "threshold"],
                                               name="one_notice_per_scope_month_threshold")]

    def __str__(self):
        return f"{self.scope} {self.scope_id}: {self.threshold}% of {self.month:%Y-%m}"
