"""Writes of routing configuration, each announced to every gateway process, and configuration as
code: import (validated, all or nothing, idempotent) and export."""

import re

from django.db import transaction

from apps.common.rates import LIMIT_FIELDS
from apps.providers.models import Credential, Provider, ProviderModel
from apps.providers.services import config_announce

from .config_schema import ConfigError, ConfigFile
from .models import Alias, RoutingRule


@transaction.atomic
def config_import(config: ConfigFile) -> dict:
    """Create or update everything in `config`; nothing outside it is touched. Returns counts."""
    counts = {"providers": 0, "models": 0, "credentials": 0, "aliases": 0, "rules": 0}
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
    config_announce()
    return counts


def rule_save(rule: RoutingRule) -> RoutingRule:
    """Create or update one rule; every gateway process sees it within a second (with Redis)."""
    rule.save()
    config_announce()
    return rule


def rules_delete(queryset) -> int:
    deleted, _ = queryset.delete()
    config_announce()
    return deleted


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
    m = rule.match
    return dict(
        priority=rule.priority, enabled=rule.enabled, match_model=m.model, match_keys=m.key,
        match_organisations=m.organisation, match_tags=m.tags, match_tools=m.tools, match_stream=m.stream,
        min_prompt_tokens=m.min_prompt_tokens, max_prompt_tokens=m.max_prompt_tokens, strategy=rule.strategy,
        targets=[t.model_dump(exclude_none=True) for t in rule.targets], retries=rule.retries,
        fallback_on=list(rule.fallback_on), deadline=rule.deadline, residency=rule.residency,
        cache_ttl=rule.cache.ttl if rule.cache else None, context_fallback=rule.context_fallback,
    )


def _env_name(*parts: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", "_".join(parts).upper()).strip("_")


def config_export() -> dict:
    """The configuration as a dict for YAML. Secrets are exported as ${ENV} references, never values."""
    providers = {}
    for p in Provider.objects.prefetch_related("credentials", "models").order_by("name"):
        spec = {"kind": p.kind, "base_url": p.base_url}
        if p.auth_url:
            spec["auth_url"] = p.auth_url
        if not p.enabled:
            spec["enabled"] = False
        if p.jurisdiction != "RU":
            spec["jurisdiction"] = p.jurisdiction
        for field in ("extra_headers", "options", "ca_bundle", "client_cert", "client_key", "timeout", "allowed_hosts"):
            value = getattr(p, field)
            if value:
                spec[field] = value
        if not p.verify_tls:
            spec["verify_tls"] = False
        creds = []
        for c in p.credentials.all():
            secrets = {k: "${" + _env_name(p.name, c.name if c.name != "default" else "", k) + "}" for k in sorted(c.secrets)}
            creds.append({"name": c.name, "secrets": secrets, "max_concurrency": c.max_concurrency,
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
    return {"providers": providers, "aliases": aliases, "rules": [_rule_export(r) for r in RoutingRule.objects.all()]}


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
    return out
