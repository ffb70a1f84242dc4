"""Routing rules as the hot path sees them: compiled once per catalog load, matched in memory."""

import fnmatch
import math
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from apps.common.personal_data import Policy

from .failures import DEFAULT_FALLBACK_ON, FALLBACK_NAMES, expand_fallback_on

STRATEGY_NAMES = {"fallback", "weighted", "round_robin", "latency", "least_busy", "cheapest"}
FAILURE_CLASSES = FALLBACK_NAMES


def validate_rule_fields(targets, fallback_on) -> None:
    """Shared by the admin form and import_config, so both refuse the same things."""
    if not isinstance(targets, list) or not targets:
        raise ValidationError({"targets": "Give at least one target: [{\"model\": \"provider/model\"}]."})
    for i, target in enumerate(targets):
        if not isinstance(target, dict) or not isinstance(target.get("model"), str) or "/" not in target["model"]:
            raise ValidationError({"targets": f"targets[{i}] needs model: provider/model"})
        unknown = set(target) - {"model", "weight", "timeout"}
        if unknown:
            raise ValidationError({"targets": f"targets[{i}] has unknown keys {sorted(unknown)}"})
        weight = target.get("weight", 1)
        if not isinstance(weight, (int, float)) or weight < 0:
            raise ValidationError({"targets": f"targets[{i}].weight must be a number ≥ 0"})
        timeout = target.get("timeout")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ValidationError({"targets": f"targets[{i}].timeout must be a positive number of seconds"})
    if not isinstance(fallback_on, list) or set(fallback_on) - FAILURE_CLASSES:
        raise ValidationError({"fallback_on": f"Use a list of {sorted(FAILURE_CLASSES)}"})


@dataclass(frozen=True, slots=True)
class TargetSpec:
    model: str
    weight: float = 1.0
    timeout: float | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    priority: int
    match_model: str = ""
    match_keys: frozenset = frozenset()
    match_organisations: frozenset = frozenset()
    match_tags: frozenset = frozenset()
    match_tools: bool | None = None
    match_stream: bool | None = None
    min_prompt_tokens: int | None = None
    max_prompt_tokens: int | None = None
    strategy: str = "fallback"
    targets: tuple[TargetSpec, ...] = field(default_factory=tuple)
    retries: int = 0
    fallback_on: frozenset = DEFAULT_FALLBACK_ON
    deadline: float | None = None
    residency: str = ""
    cache_ttl: int | None = None
    context_fallback: bool = True
    policies: tuple = ()  # its personal-data policy (apps.common.personal_data), if it sets one

    @classmethod
    def from_model(cls, r) -> "Rule":
        return cls(
            name=r.name,
            priority=r.priority,
            match_model=r.match_model,
            match_keys=frozenset(r.match_keys or ()),
            match_organisations=frozenset(str(o) for o in (r.match_organisations or ())),
            match_tags=frozenset(r.match_tags or ()),
            match_tools=r.match_tools,
            match_stream=r.match_stream,
            min_prompt_tokens=r.min_prompt_tokens,
            max_prompt_tokens=r.max_prompt_tokens,
            strategy=r.strategy,
            targets=tuple(TargetSpec(t["model"], float(t.get("weight", 1)), t.get("timeout")) for t in r.targets),
            retries=r.retries,
            fallback_on=expand_fallback_on(r.fallback_on or ()),
            deadline=r.deadline,
            residency=r.residency,
            cache_ttl=r.cache_ttl,
            context_fallback=r.context_fallback,
            policies=tuple(p for p in (Policy.of(r, outside=r.pd_jurisdiction),) if p is not None),
        )

    def matches(self, ctx: "RequestContext") -> bool:
        return not self.mismatch(ctx)

    def mismatch(self, ctx: "RequestContext") -> str:
        """The first condition `ctx` fails (a MISMATCH key), "" when the rule matches. The one home of
        matching: the router asks for a yes or no, the rule tester for the reason."""
        if self.match_model and not fnmatch.fnmatchcase(ctx.model, self.match_model):
            return "model"
        if self.match_keys and ctx.key_prefix not in self.match_keys:
            return "key"
        if self.match_organisations and str(ctx.organisation_id) not in self.match_organisations:
            return "organisation"
        if self.match_tags and not self.match_tags <= ctx.tags:
            return "tags"
        if self.match_tools is not None and self.match_tools != ctx.tools:
            return "tools"
        if self.match_stream is not None and self.match_stream != ctx.stream:
            return "stream"
        if self.min_prompt_tokens is not None and ctx.prompt_tokens < self.min_prompt_tokens:
            return "min_prompt_tokens"
        if self.max_prompt_tokens is not None and ctx.prompt_tokens > self.max_prompt_tokens:
            return "max_prompt_tokens"
        return ""

    def describe_mismatch(self, reason: str, ctx: "RequestContext") -> str:
        """`mismatch`'s answer in words, for operators."""
        return {
            "model": f"model {ctx.model!r} does not match {self.match_model!r}",
            "key": f"key {ctx.key_prefix or '(none)'} is not one of {sorted(self.match_keys)}",
            "organisation": f"organisation {ctx.organisation_id} is not one of {sorted(self.match_organisations)}",
            "tags": f"tags {sorted(ctx.tags)} lack {sorted(self.match_tags - ctx.tags)}",
            "tools": f"needs a request {'with' if self.match_tools else 'without'} tools",
            "stream": f"needs a {'streamed' if self.match_stream else 'non-streamed'} request",
            "min_prompt_tokens": f"prompt of ~{ctx.prompt_tokens} tokens is under {self.min_prompt_tokens}",
            "max_prompt_tokens": f"prompt of ~{ctx.prompt_tokens} tokens is over {self.max_prompt_tokens}",
        }.get(reason, reason)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What rules may look at: never the prompt text itself, only its estimated size."""

    model: str
    key_prefix: str = ""
    organisation_id: int | None = None
    tags: frozenset = frozenset()
    tools: bool = False
    stream: bool = False
    prompt_tokens: int = 0
    max_tokens: int = 0


def estimate_tokens(text_chars: int, model=None) -> int:
    """A count for when the provider reports none: the model's characters per token as learned from
    its usage rows (apps/routing/token_ratio.py), else about 4 characters a token."""
    ratio = getattr(model, "chars_per_token", None)  # a catalog ModelEntry, or None
    if ratio:
        return math.ceil(text_chars / ratio)
    return (text_chars + 3) // 4


def parse_tags(header: str, metadata: dict | None) -> frozenset:
    tags = {t.strip() for t in header.split(",") if t.strip()} if header else set()
    if metadata:
        raw = metadata.get("tags") or ""
        tags |= {t.strip() for t in raw.split(",") if t.strip()}
    return frozenset(tags)
