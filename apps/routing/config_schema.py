"""The configuration file format (import_config / export_config), validated with pydantic so a
bad file is refused whole, with the path of the bad field, before anything is written."""

import datetime
import os
import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from apps.common.rates import parse_rate
from apps.providers.destinations import provider_problem
from apps.providers.models import model_options_problem, token_owner_problem

ENV_REF = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


def _rate_text(value: str) -> str:
    if value:
        parse_rate(value)  # a ValueError names the expected form ("60/min")
    return value


RateText = Annotated[str, AfterValidator(_rate_text)]  # a rate as written ("600/min"); empty: none


class ConfigError(Exception):
    """A configuration file that cannot be imported; the message names the bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PriceSpec(_Strict):
    """A price from a date (TIME_ZONE) until the next one's (apps.billing keeps the history)."""

    effective_from: datetime.date
    input_price: Decimal = Field(ge=0, description="roubles per 1,000 tokens")
    output_price: Decimal = Field(default=Decimal("0"), ge=0)
    cached_input_price: Decimal | None = Field(default=None, ge=0)
    includes_vat: bool = True
    note: str = Field(default="", max_length=200, description='where the price comes from, "guess" if nowhere')


class ModelSpec(_Strict):
    kind: Literal["chat", "embedding"] = "chat"
    input_price: Decimal = Field(default=Decimal("0"), ge=0, description="roubles per 1,000 tokens")
    output_price: Decimal = Field(default=Decimal("0"), ge=0)
    cached_input_price: Decimal | None = Field(default=None, ge=0)
    # Where the plain prices above come from ("guess" if nowhere): the note of the price row billing records.
    price_note: str = Field(default="", max_length=200)
    # Effective-dated prices (apps.billing); the plain fields above are then only the price until the first.
    prices: list[PriceSpec] = Field(default_factory=list, max_length=100)
    context_window: int | None = Field(default=None, ge=1)
    jurisdiction: str = ""
    enabled: bool = True
    max_output_tokens: int | None = Field(default=None, ge=1, description="what a token limit reserves without max_tokens")
    options: dict = Field(default_factory=dict, description="per-model options (apps/providers/models.py MODEL_OPTIONS)")
    # A cap across all tenants (apps/limits): rates as "600/min", quotas in tokens.
    requests_rate: RateText = ""
    tokens_rate: RateText = ""
    max_concurrent: int | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)
    tokens_per_month: int | None = Field(default=None, ge=0)

    @field_validator("prices")
    @classmethod
    def _one_price_a_day(cls, value):
        dates = [p.effective_from for p in value]
        if len(set(dates)) != len(dates):
            raise ValueError("two prices with the same effective_from")
        return value


class CredentialSpec(_Strict):
    name: str = "default"
    secrets: dict[str, str]
    max_concurrency: int = Field(default=0, ge=0)
    requests_rate: RateText = Field(default="", description='calls per period for every process together, e.g. "10/s"')
    token_owner: Literal["", "user", "service_account"] = Field(
        default="", description="YandexGPT iam_token credentials (required there): whose token it is")


class ProviderSpec(_Strict):
    kind: Literal["gigachat", "yandexgpt", "mts", "tbank", "openai_compatible"]
    base_url: str = Field(pattern=r"^https?://")
    auth_url: str = Field(default="", pattern=r"^(https?://.*)?$")
    enabled: bool = True
    jurisdiction: str = "RU"
    credentials: dict[str, str] | list[CredentialSpec] = Field(default_factory=dict)
    max_concurrency: int = Field(default=0, ge=0, description="for the shorthand `credentials: {...}` form")
    requests_rate: RateText = Field(default="", description="for the shorthand form")
    token_owner: Literal["", "user", "service_account"] = Field(default="", description="for the shorthand form")
    extra_headers: dict[str, str] = Field(default_factory=dict)
    options: dict = Field(default_factory=dict)
    ca_bundle: str = ""
    verify_tls: bool = True
    client_cert: str = ""
    client_key: str = ""
    timeout: float | None = Field(default=None, gt=0)
    allowed_hosts: list[str] = Field(default_factory=list, description="host names, *.domain or CIDRs its connections "
                                                                       "may reach (apps/providers/destinations.py)")
    models: dict[str, ModelSpec] = Field(default_factory=dict)

    def credential_list(self) -> list[CredentialSpec]:
        if isinstance(self.credentials, dict):
            if not self.credentials:
                return []
            return [CredentialSpec(secrets=self.credentials, max_concurrency=self.max_concurrency,
                                   requests_rate=self.requests_rate, token_owner=self.token_owner)]
        return self.credentials

    @model_validator(mode="after")
    def _model_options(self):
        for name, model in self.models.items():
            problem = model_options_problem(self.kind, model.options)
            if problem:
                raise ValueError(f"model {name!r}: {problem}")
        return self

    @model_validator(mode="after")
    def _destinations(self):
        problems = provider_problem(self.kind, self.allowed_hosts, self.base_url, self.auth_url)
        if problems:
            raise ValueError("; ".join(f"{field}: {message}" for field, message in problems.items()))
        return self

    @model_validator(mode="after")
    def _token_owners(self):
        for credential in self.credential_list():
            problem = token_owner_problem(self.kind, credential.secrets, credential.token_owner)
            if problem:
                raise ValueError(f"credential {credential.name!r}: {problem}")
        return self


class TargetSpec(_Strict):
    model: str = Field(pattern=r"^[^/]+/.+$")
    weight: float = Field(default=1, ge=0)
    timeout: float | None = Field(default=None, gt=0)


class MatchSpec(_Strict):
    model: str = ""
    key: list[str] = Field(default_factory=list, description="API key prefixes")
    organisation: list[int] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    tools: bool | None = None
    stream: bool | None = None
    min_prompt_tokens: int | None = Field(default=None, ge=0)
    max_prompt_tokens: int | None = Field(default=None, ge=0)


class CacheSpec(_Strict):
    ttl: int = Field(gt=0)


class PersonalDataSpec(_Strict):
    """A rule's personal-data policy (README, "Personal data (152-FZ)")."""

    policy: Literal["off", "mask", "pseudonymize", "redact"] = "off"
    names: bool = False
    outside: str = Field(default="", max_length=8, description="apply only to targets outside this jurisdiction (e.g. RU)")
    blocked_terms: list[str] = Field(default_factory=list, max_length=200)

    @field_validator("blocked_terms")
    @classmethod
    def _terms(cls, value):
        if any(not t.strip() or len(t) > 200 for t in value):
            raise ValueError("blocked terms are non-empty strings of at most 200 characters")
        return value


class RuleSpec(_Strict):
    name: str = Field(pattern=r"^[-a-zA-Z0-9_]{1,100}$")
    priority: int = 100
    enabled: bool = True
    match: MatchSpec = Field(default_factory=MatchSpec)
    strategy: Literal["fallback", "weighted", "round_robin", "latency", "least_busy", "cheapest"] = "fallback"
    targets: list[TargetSpec] = Field(min_length=1)
    retries: int = Field(default=0, ge=0, le=10)
    fallback_on: list[Literal["5xx", "429", "timeout", "connection", "capacity", "content_filter", "auth"]] = Field(
        default_factory=lambda: ["5xx", "429", "timeout", "connection"]
    )
    deadline: float | None = Field(default=None, gt=0)
    residency: str = ""
    cache: CacheSpec | None = None
    personal_data: PersonalDataSpec | None = None

    @field_validator("fallback_on", mode="before")
    @classmethod
    def _status_as_text(cls, value):
        # YAML reads `429` as a number; it names the same failure class.
        return [str(v) for v in value] if isinstance(value, list) else value
    context_fallback: bool = True


class OrganisationSpec(_Strict):
    """An existing organisation's limits and monthly budget (tenants are made in the portal or the admin,
    never by a configuration file); empty fields lift a limit."""

    requests_rate: RateText = ""
    tokens_rate: RateText = ""
    max_concurrent: int | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)
    tokens_per_month: int | None = Field(default=None, ge=0)
    monthly_budget: Decimal | None = Field(default=None, ge=0, lt=Decimal(10) ** 12, decimal_places=2,
                                           description="roubles per calendar month, VAT included")


class ConfigFile(_Strict):
    providers: dict[str, ProviderSpec] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)
    rules: list[RuleSpec] = Field(default_factory=list)
    organisations: dict[str, OrganisationSpec] = Field(default_factory=dict, max_length=10_000)

    @field_validator("providers")
    @classmethod
    def _slug_names(cls, value):
        for name in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
                raise ValueError(f"provider name {name!r} must be a lower-case slug")
        return value

    @field_validator("aliases")
    @classmethod
    def _targets(cls, value):
        from .models import ALIAS_NAME, ALIAS_NAME_HELP

        for alias, target in value.items():
            if not ALIAS_NAME.fullmatch(alias):
                raise ValueError(f"alias {alias!r}: use {ALIAS_NAME_HELP}")
            if "/" not in target:
                raise ValueError(f"alias {alias!r}: target {target!r} must be provider/model")
        return value


def substitute_env(value):
    """Replace ${NAME} / ${NAME:-default} in strings; a missing variable is an error."""
    if isinstance(value, dict):
        return {k: substitute_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v) for v in value]
    if isinstance(value, str):
        def repl(match):
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set")

        return ENV_REF.sub(repl, value)
    return value


def parse_config(data) -> ConfigFile:
    if not isinstance(data, dict):
        raise ConfigError("the file must hold a mapping with `providers` and `aliases`")
    try:
        config = ConfigFile.model_validate(substitute_env(data))
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        path = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "list[", "dict[")))
        raise ConfigError(f"{path}: {err['msg']}") from None
    for alias, target in config.aliases.items():
        provider, _, model = target.partition("/")
        spec = config.providers.get(provider)
        if spec is not None and model not in spec.models:
            raise ConfigError(f"aliases.{alias}: provider {provider!r} has no model {model!r}")
    names = [r.name for r in config.rules]
    if len(names) != len(set(names)):
        raise ConfigError("rules: rule names must be unique")
    for i, rule in enumerate(config.rules):
        for j, target in enumerate(rule.targets):
            provider, _, model = target.model.partition("/")
            spec = config.providers.get(provider)
            if spec is not None and model not in spec.models:
                raise ConfigError(f"rules.{i}.targets.{j}.model: provider {provider!r} has no model {model!r}")
    return config
