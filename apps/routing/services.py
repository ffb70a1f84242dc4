"""Writes of routing configuration, each announced to every gateway process, and configuration as
code: import (validated, all or nothing, idempotent) and export."""

import re

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.accounts.models import Organisation
from apps.accounts.services import organisation_limits_announce
from apps.audit.services import audit
from apps.common.rates import KEY_LIMIT_FIELDS, LIMIT_FIELDS
from apps.providers.models import Credential, Provider, ProviderModel
from apps.providers.services import config_announce
from apps.usage.models import UsageRecord

from .config_schema import ConfigError, ConfigFile, PersonalDataSpec
from .models import Alias, ManualBreaker, RoutingRule


@transaction.atomic
def config_import(config: ConfigFile, *, replace: bool = False) -> dict:
    """Create or update everything in `config`. A merge (the default) touches nothing outside it; a replace
    also deletes the rules and aliases it does not list, and the providers it does not list that have no
    usage and that nothing it lists targets (config_unlisted). Returns counts."""
    counts = {"providers": 0, "models": 0, "credentials": 0, "aliases": 0, "rules": 0, "organisations": 0}
    unlisted = config_unlisted(config) if replace else None
    for name, spec in config.providers.items():
        _check_secrets_follow_origin(name, spec)
        provider, _ = Provider.objects.update_or_create(
            name=name,
            defaults=dict(
                kind=spec.kind, base_url=spec.base_url, auth_url=spec.auth_url, enabled=spec.enabled,
                jurisdiction=spec.jurisdiction, extra_headers=spec.extra_headers, options=spec.options,
                ca_bundle=spec.ca_bundle, verify_tls=spec.verify_tls, client_cert=spec.client_cert,
                client_key=spec.client_key, timeout=spec.timeout, allowed_hosts=spec.allowed_hosts,
            ),
        )
        counts["providers"] += 1
        for cred in spec.credential_list():
            Credential.objects.update_or_create(
                provider=provider, name=cred.name,
                defaults={"secrets": cred.secrets, "max_concurrency": cred.max_concurrency, "token_owner": cred.token_owner,
                          "requests_rate": cred.requests_rate,
                          "enabled": True},
            )
            counts["credentials"] += 1
        for model_name, m in spec.models.items():
            ProviderModel.objects.update_or_create(
                provider=provider, name=model_name,
                defaults=dict(
                    kind=m.kind, input_price=m.input_price, output_price=m.output_price,
                    cached_input_price=m.cached_input_price, context_window=m.context_window,
                    jurisdiction=m.jurisdiction, enabled=m.enabled, max_output_tokens=m.max_output_tokens, options=m.options,
                    **{field: getattr(m, field) for field in LIMIT_FIELDS},
                ),
            )
            counts["models"] += 1
    for alias, target in config.aliases.items():
        provider, _, model = target.partition("/")
        if not ProviderModel.objects.filter(provider__name=provider, name=model).exists():
            raise ConfigError(f"aliases.{alias}: no model {target!r} in the file or the database")
        Alias.objects.update_or_create(name=alias, defaults={"target": target, "enabled": True})
        counts["aliases"] += 1
    for i, rule in enumerate(config.rules):
        for j, target in enumerate(rule.targets):
            provider, _, model = target.model.partition("/")
            if not ProviderModel.objects.filter(provider__name=provider, name=model).exists():
                raise ConfigError(f"rules.{i}.targets.{j}.model: no model {target.model!r} in the file or the database")
        RoutingRule.objects.update_or_create(name=rule.name, defaults=_rule_fields(rule))
    counts["rules"] = len(config.rules)
    for name, spec in config.organisations.items():
        organisation = Organisation.objects.select_for_update().filter(name=name).first()
        if organisation is None:
            raise ConfigError(f"organisations.{name}: no such organisation (tenants are made in the portal or the admin)")
        for field in KEY_LIMIT_FIELDS:
            setattr(organisation, field, getattr(spec, field))
        organisation.save(update_fields=list(KEY_LIMIT_FIELDS))
        organisation_limits_announce(organisation)
        counts["organisations"] += 1
    if unlisted is not None:
        RoutingRule.objects.filter(name__in=unlisted["rules"]).delete()
        Alias.objects.filter(name__in=unlisted["aliases"]).delete()
        Provider.objects.filter(name__in=unlisted["providers"]).delete()
        counts.update({f"deleted {k}": len(v) for k, v in unlisted.items() if k != "providers_kept"})
    config_announce()
    return counts


def config_import_file(config: ConfigFile, *, replace: bool = False) -> dict:
    """config_import and the price history the file gives (billing's, when installed): what import_config
    and the admin's import do, all or nothing."""
    from django.apps import apps as django_apps

    with transaction.atomic():
        counts = config_import(config, replace=replace)
        if django_apps.is_installed("apps.billing"):
            # The price history (effective dates, VAT) is billing's; imported lazily, as urls and the
            # admin do: nothing in routing depends on billing.
            from apps.billing.services import prices_import

            counts["prices"] = prices_import({(provider, name): spec for provider, p in config.providers.items()
                                              for name, spec in p.models.items()})
    return counts


def config_unlisted(config: ConfigFile) -> dict:
    """What a replace of the configuration by `config` deletes: rules and aliases it does not list, and
    providers it does not list — except those with usage (billing rows name them) or that a listed rule
    or alias targets, which are kept (providers_kept: name → why)."""
    rules = sorted(RoutingRule.objects.exclude(name__in=[r.name for r in config.rules]).values_list("name", flat=True))
    aliases = sorted(Alias.objects.exclude(name__in=list(config.aliases)).values_list("name", flat=True))
    targeted = {t.model.partition("/")[0] for r in config.rules for t in r.targets}
    targeted |= {target.partition("/")[0] for target in config.aliases.values()}
    providers, kept = [], {}
    for name in Provider.objects.exclude(name__in=list(config.providers)).order_by("name").values_list("name", flat=True):
        if name in targeted:
            kept[name] = "a listed rule or alias targets it"
        elif UsageRecord.objects.filter(provider=name).exists():
            kept[name] = "it has usage"
        else:
            providers.append(name)
    return {"rules": rules, "aliases": aliases, "providers": providers, "providers_kept": kept}


PROVIDER_FIELDS = ("kind", "base_url", "auth_url", "enabled", "jurisdiction", "extra_headers", "options", "ca_bundle",
                   "verify_tls", "client_cert", "client_key", "timeout")
MODEL_FIELDS = ("kind", "input_price", "output_price", "cached_input_price", "context_window", "jurisdiction", "enabled",
                "max_output_tokens", "options", *LIMIT_FIELDS)


def config_diff(config: ConfigFile, *, replace: bool = False) -> dict:
    """What config_import would change, without writing: per section, [(name, what)] — "added", "changed:
    <fields>", "deleted", "kept: <why>". Names fields, never values (a provider's may be secrets)."""
    diff = {"providers": [], "aliases": [], "rules": [], "organisations": []}
    stored = {p.name: p for p in Provider.objects.prefetch_related("models", "credentials")}
    for name, spec in config.providers.items():
        provider = stored.get(name)
        if provider is None:
            diff["providers"].append((name, f"added, with {len(spec.models)} model(s)"))
            continue
        changed = [f for f in PROVIDER_FIELDS if getattr(provider, f) != getattr(spec, f)]
        models = {m.name: m for m in provider.models.all()}
        for model_name, m in spec.models.items():
            if model_name not in models:
                changed.append(f"model {model_name} added")
            else:
                fields = [f for f in MODEL_FIELDS if getattr(models[model_name], f) != getattr(m, f)]
                if fields:
                    changed.append(f"model {model_name} ({', '.join(fields)})")
        changed += [f"credential {c.name} set" for c in spec.credential_list()]
        if changed:
            diff["providers"].append((name, "changed: " + "; ".join(changed)))
    aliases = {a.name: a for a in Alias.objects.all()}
    for name, target in config.aliases.items():
        alias = aliases.get(name)
        if alias is None:
            diff["aliases"].append((name, f"added → {target}"))
        elif alias.target != target or not alias.enabled:
            diff["aliases"].append((name, f"changed → {target}"))
    rules = {r.name: r for r in RoutingRule.objects.all()}
    for rule in config.rules:
        fields = _rule_fields(rule)
        existing = rules.get(rule.name)
        if existing is None:
            diff["rules"].append((rule.name, "added"))
        else:
            changed = [f for f, v in fields.items() if getattr(existing, f) != v]
            if changed:
                diff["rules"].append((rule.name, "changed: " + ", ".join(changed)))
    diff["organisations"] = [(name, "limits and budget set") for name in config.organisations]
    if replace:
        unlisted = config_unlisted(config)
        diff["rules"] += [(name, "deleted") for name in unlisted["rules"]]
        diff["aliases"] += [(name, "deleted") for name in unlisted["aliases"]]
        diff["providers"] += [(name, "deleted, with its models and credentials") for name in unlisted["providers"]]
        diff["providers"] += [(name, f"kept: {why}") for name, why in unlisted["providers_kept"].items()]
    return diff


def rule_save(rule: RoutingRule) -> RoutingRule:
    """Create or update one rule; every gateway process sees it within a second (with Redis)."""
    rule.save()
    config_announce()
    return rule


def rules_delete(queryset) -> int:
    deleted, _ = queryset.delete()
    config_announce()
    return deleted


def breaker_target_problem(target: str) -> str:
    """"" when `target` names a provider or one of its models, else what is wrong."""
    provider, _, model = target.partition("/")
    if not Provider.objects.filter(name=provider).exists():
        return f"no provider {provider!r}"
    if model and not ProviderModel.objects.filter(provider__name=provider, name=model).exists():
        return f"no model {target!r}"
    return ""


@transaction.atomic
def breaker_set(target: str, *, opened: bool, until=None, reason: str = "", actor=None) -> ManualBreaker:
    """Open (no request goes there) or close (the automatic breaker is ignored) a target's or a whole
    provider's breaker by hand, until `until` (None: until removed). Stored, so every gateway process
    applies it at its next catalog load (announced now) and after a restart; audited."""
    problem = breaker_target_problem(target)
    if problem:
        raise ValidationError({"target": problem})
    breaker, _ = ManualBreaker.objects.update_or_create(target=target, defaults={
        "open": opened, "until": until, "reason": reason[:300],
        "set_by": (actor.get_username() if hasattr(actor, "get_username") else str(actor or "system"))[:150]})
    audit("breaker.opened" if opened else "breaker.closed", target=breaker, actor=actor,
          detail={"target": target, "until": until.isoformat() if until else None, "reason": reason[:300]})
    config_announce()
    return breaker


@transaction.atomic
def breaker_clear(breaker: ManualBreaker, *, actor=None) -> None:
    """Hand the target back to its automatic breaker, in every process; audited."""
    audit("breaker.released", target=breaker, actor=actor, detail={"target": breaker.target, "was_open": breaker.open})
    breaker.delete()
    config_announce()


def _check_secrets_follow_origin(name: str, spec) -> None:
    """Stored secrets are never sent where they were not entered for (Provider.moves_secrets_from:
    another origin, or weaker TLS trust): such a file gives the secrets of every credential the
    provider keeps."""
    stored = Provider.objects.filter(name=name).first()
    if stored is None:
        return
    edited = Provider(base_url=spec.base_url, auth_url=spec.auth_url, verify_tls=spec.verify_tls,
                      ca_bundle=spec.ca_bundle or "")
    if not edited.moves_secrets_from(stored):
        return
    missing = set(stored.credentials.values_list("name", flat=True)) - {c.name for c in spec.credential_list()}
    if missing:
        raise ConfigError(
            f"providers.{name}: moves its URLs to another origin or weakens TLS trust, so the secrets of credential(s) "
            f"{', '.join(sorted(missing))} must be given in the file (the stored ones are not sent there)"
        )


def _rule_fields(rule) -> dict:
    m, pd = rule.match, rule.personal_data or PersonalDataSpec()
    return dict(
        priority=rule.priority, enabled=rule.enabled, match_model=m.model, match_keys=m.key,
        match_organisations=m.organisation, match_tags=m.tags, match_tools=m.tools, match_stream=m.stream,
        min_prompt_tokens=m.min_prompt_tokens, max_prompt_tokens=m.max_prompt_tokens, strategy=rule.strategy,
        targets=[t.model_dump(exclude_none=True) for t in rule.targets], retries=rule.retries,
        fallback_on=list(rule.fallback_on), deadline=rule.deadline, residency=rule.residency,
        cache_ttl=rule.cache.ttl if rule.cache else None, context_fallback=rule.context_fallback,
        pd_policy=pd.policy, pd_names=pd.names, pd_jurisdiction=pd.outside, blocked_terms=list(pd.blocked_terms),
    )


def _env_name(*parts: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", "_".join(parts).upper()).strip("_")


def config_export() -> dict:
    """The configuration as a dict for YAML. Secrets (credentials, extra headers) are exported as ${ENV}
    references, never values."""
    providers = {}
    for p in Provider.objects.prefetch_related("credentials", "models").order_by("name"):
        spec = {"kind": p.kind, "base_url": p.base_url}
        if p.auth_url:
            spec["auth_url"] = p.auth_url
        if not p.enabled:
            spec["enabled"] = False
        if p.jurisdiction != "RU":
            spec["jurisdiction"] = p.jurisdiction
        if p.extra_headers:  # they often carry a secret: references, like the credentials
            spec["extra_headers"] = {h: "${" + _env_name(p.name, "header", h) + "}" for h in sorted(p.extra_headers)}
        for field in ("options", "ca_bundle", "client_cert", "client_key", "timeout", "allowed_hosts"):
            value = getattr(p, field)
            if value:
                spec[field] = value
        if not p.verify_tls:
            spec["verify_tls"] = False
        creds = []
        for c in p.credentials.all():
            secrets = {k: "${" + _env_name(p.name, c.name if c.name != "default" else "", k) + "}" for k in sorted(c.secrets)}
            creds.append({"name": c.name, "secrets": secrets, "max_concurrency": c.max_concurrency,
                          **({"requests_rate": c.requests_rate} if c.requests_rate else {}),
                          **({"token_owner": c.token_owner} if c.token_owner else {})})
        if creds:
            spec["credentials"] = creds
        models = {}
        for m in p.models.all():
            entry = {"kind": m.kind, "input_price": str(m.input_price), "output_price": str(m.output_price)}
            if m.cached_input_price is not None:
                entry["cached_input_price"] = str(m.cached_input_price)
            if m.context_window:
                entry["context_window"] = m.context_window
            if m.jurisdiction:
                entry["jurisdiction"] = m.jurisdiction
            for field in ("max_output_tokens", *LIMIT_FIELDS):
                if getattr(m, field) not in ("", None):
                    entry[field] = getattr(m, field)
            if m.options:
                entry["options"] = m.options
            if not m.enabled:
                entry["enabled"] = False
            models[m.name] = entry
        spec["models"] = models
        providers[p.name] = spec
    aliases = dict(Alias.objects.order_by("name").values_list("name", "target"))
    organisations = {}
    for o in Organisation.objects.order_by("name"):
        limits = {f: str(v) if f == "monthly_budget" else v for f in KEY_LIMIT_FIELDS if (v := getattr(o, f)) not in ("", None)}
        if limits:
            organisations[o.name] = limits
    return {"providers": providers, "aliases": aliases, "rules": [_rule_export(r) for r in RoutingRule.objects.all()],
            **({"organisations": organisations} if organisations else {})}


def _rule_export(r: RoutingRule) -> dict:
    match = {k: v for k, v in {
        "model": r.match_model, "key": r.match_keys, "organisation": r.match_organisations, "tags": r.match_tags,
        "tools": r.match_tools, "stream": r.match_stream, "min_prompt_tokens": r.min_prompt_tokens,
        "max_prompt_tokens": r.max_prompt_tokens,
    }.items() if v not in ("", [], None)}
    out = {"name": r.name, "priority": r.priority, "match": match, "strategy": r.strategy, "targets": r.targets,
           "retries": r.retries, "fallback_on": r.fallback_on}
    if not r.enabled:
        out["enabled"] = False
    if r.deadline:
        out["deadline"] = r.deadline
    if r.residency:
        out["residency"] = r.residency
    if r.cache_ttl:
        out["cache"] = {"ttl": r.cache_ttl}
    if not r.context_fallback:
        out["context_fallback"] = False
    if r.pd_policy != "off" or r.blocked_terms:
        out["personal_data"] = {"policy": r.pd_policy, "names": r.pd_names, "outside": r.pd_jurisdiction,
                                "blocked_terms": r.blocked_terms}
    return out
