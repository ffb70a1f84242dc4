import re

from django.core.exceptions import ValidationError
from django.db import models

from apps.common.personal_data import PersonalDataFields

# Alias names travel in response headers (x-xrouter-route), which carry Latin-1 at most: ASCII only,
# and none of the separators a header value gives meaning to. Rule names are slugs already.
ALIAS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}")
ALIAS_NAME_HELP = "ASCII letters, digits and . _ : / @ + - (it is sent in a response header)"


def validate_target(value: str) -> None:
    if "/" not in value or value.startswith("/") or value.endswith("/"):
        raise ValidationError("Use provider/model, e.g. gigachat/GigaChat-2-Max")


class Alias(models.Model):
    """A model name clients may use (e.g. gpt-4o) that stands for `provider/model`."""

    name = models.CharField(max_length=200, unique=True)
    target = models.CharField(max_length=300, validators=[validate_target])
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "aliases"

    def __str__(self):
        return f"{self.name} → {self.target}"

    def clean(self):
        if not ALIAS_NAME.fullmatch(self.name or ""):
            raise ValidationError({"name": f"Use {ALIAS_NAME_HELP}."})


STRATEGIES = [
    ("fallback", "Ordered fallback"),
    ("weighted", "Weighted random"),
    ("round_robin", "Round robin"),
    ("latency", "Lowest latency"),
    ("least_busy", "Least busy"),
    ("cheapest", "Cheapest healthy"),
]
FAILURE_CLASSES = ["5xx", "429", "timeout", "connection", "content_filter", "auth"]


def default_fallback_on():
    return ["5xx", "429", "timeout", "connection"]


class RoutingRule(PersonalDataFields):
    """Matches requests and sends them to a list of targets with a strategy.

    Rules are tried by ascending priority; the first enabled rule whose every set condition
    holds wins. Targets: [{"model": "provider/model", "weight": 1, "timeout": 30}, ...].
    """

    name = models.SlugField(max_length=100, unique=True)
    priority = models.IntegerField(default=100, help_text="Lower runs first.")
    enabled = models.BooleanField(default=True)
    # --- match (empty = any) ---
    match_model = models.CharField(max_length=200, blank=True, help_text='Requested model or alias; glob, e.g. "xrouter/*".')
    match_keys = models.JSONField(default=list, blank=True, help_text="API key prefixes.")
    match_organisations = models.JSONField(default=list, blank=True, help_text="Organisation ids.")
    match_tags = models.JSONField(default=list, blank=True, help_text="Every tag must be present (x-xrouter-tags or metadata).")
    match_tools = models.BooleanField(null=True, blank=True, help_text="Only requests with (yes) / without (no) tools.")
    match_stream = models.BooleanField(null=True, blank=True)
    min_prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    max_prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    # --- action ---
    strategy = models.CharField(max_length=16, choices=STRATEGIES, default="fallback")
    targets = models.JSONField(default=list)
    retries = models.PositiveSmallIntegerField(default=0, help_text="Extra attempts per target, with backoff and jitter.")
    fallback_on = models.JSONField(default=default_fallback_on, blank=True, help_text=f"Any of {FAILURE_CLASSES}.")
    deadline = models.FloatField(null=True, blank=True, help_text="Seconds for the whole request, retries and fallbacks included.")
    residency = models.CharField(max_length=8, blank=True, help_text="Only targets of this jurisdiction, even on fallback.")
    cache_ttl = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds; enables the response cache for this rule.")
    context_fallback = models.BooleanField(default=True, help_text="Send prompts too long for a target to a larger one.")
    # --- personal data (the policy fields come from PersonalDataFields) ---
    pd_jurisdiction = models.CharField(
        "personal-data policy only outside", max_length=8, blank=True,
        help_text="If set (e.g. RU), this rule's personal-data policy applies only to attempts on targets of another "
                  "jurisdiction (decided per attempt: a fallback abroad is anonymized, a local primary is not).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "name"]

    def __str__(self):
        return self.name

    def clean(self):
        from apps.providers.models import ProviderModel

        from .rules import validate_rule_fields

        validate_rule_fields(self.targets, self.fallback_on)
        for i, target in enumerate(self.targets):
            provider, _, model = target["model"].partition("/")
            if not ProviderModel.objects.filter(provider__name=provider, name=model).exists():
                raise ValidationError({"targets": f"targets[{i}]: no model {target['model']!r}"})


class ManualBreaker(models.Model):
    """A circuit breaker opened or closed by an operator, for one target (`provider/model`) or a whole
    provider (`provider`). Every gateway process reads these with its catalog (so they reach all of them
    through the bus's config event, and survive restarts); one whose `until` has passed no longer applies.
    Closed by hand: the target is tried whatever its automatic breaker says."""

    target = models.CharField(max_length=300, unique=True, help_text="provider/model, or a provider's name for all its models.")
    open = models.BooleanField(default=True, help_text="Open: no request is sent there. Closed: the automatic breaker is ignored.")
    until = models.DateTimeField(null=True, blank=True, help_text="Empty: until removed.")
    reason = models.CharField(max_length=300, blank=True)
    set_by = models.CharField(max_length=150, blank=True)
    set_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["target"]

    def __str__(self):
        return f"{self.target} {'open' if self.open else 'closed'} by hand"

    def in_force(self, now) -> bool:
        return self.until is None or self.until > now
