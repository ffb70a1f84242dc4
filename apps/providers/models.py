from decimal import Decimal
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from apps.common.crypto import EncryptedJSONField
from apps.common.rates import LimitFields, validate_rate

KIND_CHOICES = [
    ("gigachat", "GigaChat (Sber)"),
    ("yandexgpt", "YandexGPT (Yandex Cloud)"),
    ("mts", "MTS AI (MWS GPT)"),
    ("tbank", "T-Bank (T-Pro / T-Lite, vLLM)"),
    ("openai_compatible", "Any OpenAI-compatible API"),
]


class Provider(models.Model):
    """An upstream service. Models are addressed as `<name>/<model>`."""

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=32, choices=KIND_CHOICES)
    base_url = models.URLField(max_length=500)
    auth_url = models.URLField(max_length=500, blank=True)
    enabled = models.BooleanField(default=True)
    jurisdiction = models.CharField(max_length=8, default="RU", help_text="Where it is hosted; models inherit it.")
    # Headers sent on every call; they often carry a secret (an API key of a proxy in front), so the whole
    # set is encrypted at rest, written only (the admin shows their names) and exported as ${ENV} references.
    extra_headers = EncryptedJSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True, help_text="Kind-specific settings (e.g. scope, thinking).")
    ca_bundle = models.TextField(blank=True, help_text="PEM of extra trusted roots (e.g. the Russian Trusted Root CA).")
    verify_tls = models.BooleanField(default=True, help_text="Never switch off in production.")
    client_cert = models.TextField(blank=True, help_text="Path to a client certificate (mTLS).")
    client_key = models.TextField(blank=True, help_text="Path to the client certificate's key (mTLS).")
    timeout = models.FloatField(null=True, blank=True, help_text="Total seconds per upstream call; empty = default.")
    allowed_hosts = models.JSONField(
        default=list, blank=True,
        help_text='Where its connections may go: host names, "*.domain" wildcards or CIDRs, e.g. ["llm.internal.example", '
                  '"10.20.0.0/16"]. Empty: the kind\'s documented public hosts (GigaChat, YandexGPT, MTS), any public host '
                  "(T-Bank, OpenAI-compatible). Private addresses only inside networks listed here (or XROUTER_FETCH_ALLOW).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        super().clean()
        from .destinations import provider_problem

        if self.allowed_hosts is None:  # the admin's emptied field: no list (the kind's default hosts)
            self.allowed_hosts = []
        problems = provider_problem(self.kind, self.allowed_hosts, self.base_url, self.auth_url)
        if problems:
            raise ValidationError(problems)

    def secret_origins(self) -> tuple[tuple, tuple]:
        """Where this provider's secrets are sent: the origins of base_url and of auth_url, each
        for its own (a swap would send the token secret to the API host, which never had it)."""
        return url_origin(self.base_url), url_origin(self.auth_url)

    def moves_secrets_from(self, stored: "Provider") -> bool:
        """Whether this edit of `stored` sends its secrets somewhere they were not entered for:
        another origin, or weaker TLS trust (verification off, or a CA bundle of the editor's
        own, lets whoever sits on the path read them)."""
        bundle = (self.ca_bundle or "").strip()
        return (self.secret_origins() != stored.secret_origins()
                or (stored.verify_tls and not self.verify_tls)
                or (bundle != "" and bundle != (stored.ca_bundle or "").strip()))


def url_origin(url: str) -> tuple:
    """(scheme, host, port) of a URL, default ports filled in; "" has an origin of its own (the
    adapter's built-in endpoint)."""
    if not url:
        return ("", "", None)
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return (scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme))


def token_owner_problem(kind: str, secrets: dict, token_owner: str) -> str | None:
    """Why a credential's `token_owner` does not fit its secrets, or None. A YandexGPT IAM token
    does not say whose it is, and the two owners need different requests: a user account's token
    must name its folder (x-folder-id), a service account's must not (a different folder is a 400)
    (yandexgpt.md §2, Yandex's authentication docs). So an iam_token credential states it."""
    if kind == "yandexgpt" and isinstance(secrets, dict) and secrets.get("iam_token"):
        if token_owner not in Credential.TOKEN_OWNERS:
            return "An iam_token credential must say whose token it is: token_owner user or service_account."
    elif token_owner:
        return "token_owner applies to YandexGPT iam_token credentials only."
    return None


class Credential(models.Model):
    """Secrets for one upstream account, encrypted at rest; never shown back."""

    USER, SERVICE_ACCOUNT = "user", "service_account"
    TOKEN_OWNERS = (USER, SERVICE_ACCOUNT)

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="credentials")
    name = models.CharField(max_length=100, default="default")
    secrets = EncryptedJSONField(blank=True, default=dict)
    max_concurrency = models.PositiveIntegerField(
        default=0, help_text="Concurrent upstream requests allowed (GigaChat individuals: 1). 0 = unlimited."
    )
    requests_rate = models.CharField(
        max_length=32, blank=True, validators=[validate_rate],
        help_text='Calls this account may make, shared by every gateway process (e.g. "10/s"); a call beyond it '
                  "waits up to XROUTER_CONCURRENCY_WAIT, then the router falls back. Empty: unlimited.")
    token_owner = models.CharField(
        max_length=16, blank=True, default="",
        choices=[("", "—"), (USER, "user account"), (SERVICE_ACCOUNT, "service account")],
        help_text="YandexGPT iam_token only (required there): whose token it is. A user account's token is sent with "
                  "x-folder-id, a service account's without it.",
    )
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        unique_together = [("provider", "name")]

    def __str__(self):
        return f"{self.provider.name}:{self.name}"

    def secret_names(self) -> list[str]:
        return sorted(self.secrets)


# Per-model options of the OpenAI-compatible kinds (ProviderModel.options), read by openai_compat.py.
MODEL_OPTIONS = {
    # Which field carries the output limit: OpenAI's o-series and GPT-5 refuse max_tokens and take
    # max_completion_tokens (OpenAI API reference, chat/create); MTS proxies such models.
    "output_limit_field": ("max_tokens", "max_completion_tokens"),
    # Whether chat_template_kwargs (vLLM's switch for the Qwen3 template's thinking) may be sent:
    # not to a proxied OpenAI model, which refuses unknown fields.
    "chat_template_kwargs": (True, False),
    # The chat template opens <think> in the prompt (DeepSeek-R1 distills, QwQ): the output
    # starts inside the reasoning. Unset: decided from the model's name.
    "think_start": (True, False),
}
OPENAI_COMPATIBLE_KINDS = ("mts", "tbank", "openai_compatible")


def model_options_problem(kind: str, options) -> str | None:
    """Why `options` are not valid for a model of a provider of `kind`, or None."""
    if not options:
        return None
    if not isinstance(options, dict):
        return "Model options must be a JSON object."
    if kind not in OPENAI_COMPATIBLE_KINDS:
        return f"Model options apply to the OpenAI-compatible kinds ({', '.join(OPENAI_COMPATIBLE_KINDS)}) only."
    for name, value in options.items():
        if name not in MODEL_OPTIONS:
            return f"Unknown model option {name!r}; known: {', '.join(MODEL_OPTIONS)}."
        allowed = MODEL_OPTIONS[name]
        if value not in allowed or type(value) is not type(allowed[0]):
            return f"Model option {name!r} takes one of {', '.join(repr(a) for a in allowed)}."
    return None


class ProviderModel(LimitFields):
    """A model a provider serves, with prices in roubles per 1,000 tokens. Its limits are a cap across all
    tenants (the provider contract's)."""

    CHAT, EMBEDDING = "chat", "embedding"
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=200, help_text="The provider's own model id.")
    kind = models.CharField(max_length=16, choices=[(CHAT, "chat"), (EMBEDDING, "embedding")], default=CHAT)
    enabled = models.BooleanField(default=True)
    input_price = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"), validators=[MinValueValidator(0)])
    output_price = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"), validators=[MinValueValidator(0)])
    cached_input_price = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, help_text="Empty = cached prompt tokens are free."
    )
    context_window = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="The model's output cap: what a token limit reserves when a request sets no "
                                         "max_tokens. Empty = 4096.")
    jurisdiction = models.CharField(max_length=8, blank=True, help_text="Empty = the provider's.")
    chars_per_token = models.FloatField(
        null=True, blank=True, editable=False,
        help_text="Learned from usage rows by a periodic task (apps/routing/token_ratio.py): what estimated counts "
                  "divide characters by. Empty = 4.")
    options = models.JSONField(
        default=dict, blank=True,
        help_text='OpenAI-compatible kinds: {"output_limit_field": "max_completion_tokens"} (o-series, GPT-5), '
                  '{"chat_template_kwargs": false} (a proxied OpenAI model), {"think_start": true} (R1 distills, QwQ).')

    class Meta:
        unique_together = [("provider", "name")]
        ordering = ["provider__name", "name"]

    def clean(self):
        super().clean()
        problem = model_options_problem(self.provider.kind if self.provider_id else "", self.options)
        if problem:
            raise ValidationError({"options": problem})

    def __str__(self):
        return f"{self.provider.name}/{self.name}"

    @property
    def effective_jurisdiction(self) -> str:
        return self.jurisdiction or self.provider.jurisdiction

    def capabilities(self) -> list[str]:
        """What a client may ask of this model through /v1: streaming, tools, images, dimensions."""
        from .adapters import adapter_class  # lazily: an adapter module is imported when its kind is first used

        try:
            adapter = adapter_class(self.provider.kind)
        except KeyError:  # a kind no adapter serves (a row edited by hand): it can do nothing
            return []
        if self.kind == self.EMBEDDING:
            return ["dimensions"] if adapter.supports_dimensions else []
        return ["streaming", "tools", *(["images"] if adapter.takes_images(self.name) else [])]


class HealthCheck(models.Model):
    """One active health-check result (the routing issue's Celery beat task writes these)."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="health_checks")
    ok = models.BooleanField()
    latency_ms = models.FloatField(null=True)
    detail = models.CharField(max_length=500, blank=True)
    balance = models.JSONField(null=True, blank=True, help_text="Prepaid tokens left by usage kind (GigaChat), if known.")
    checked_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-checked_at"]
        indexes = [models.Index(fields=["provider", "-checked_at"], name="healthcheck_provider_recent")]
