"""Each model's characters per token, learned from its usage rows: what the gateway's estimates
(accounting.estimate_tokens: usage a provider did not report, a prompt's size for prompt-size routing,
/v1/xrouter/tokenize's fallback) divide characters by, instead of a flat 4.

A row teaches when the provider counted its prompt (not estimated, status ok, no cache hit) and the
gateway knew the prompt's characters (prompt_chars, the same measure the estimate starts from, so
per-message framing and tool definitions are absorbed in the ratio). The limits' reservations keep their
upper bound (apps/limits/estimate.py: a character a token) and never use it."""

import logging
from datetime import timedelta

from django.db.models import Count, Sum
from django.utils import timezone

from apps.providers.models import ProviderModel
from apps.providers.services import config_announce
from apps.usage.models import UsageRecord

log = logging.getLogger(__name__)

WINDOW = timedelta(days=7)  # recent rows only: a provider may change its tokenizer with a model version
MIN_ROWS = 20  # fewer tell too little; the model keeps what it had
MIN_RATIO, MAX_RATIO = 0.5, 12.0  # outside these the rows are wrong, not the tokenizer
CHANGE = 0.02  # a relative change below this is noise: no write, no catalog reload


def learned_ratios(now=None) -> dict[tuple[str, str], float]:
    """(provider, model) → characters per token over the window's rows, for models with enough of them."""
    since = (now or timezone.now()) - WINDOW
    rows = (UsageRecord.objects.filter(created_at__gte=since, status="ok", estimated=False, cache_hit=False,
                                       prompt_chars__gt=0, prompt_tokens__gt=0)
            .values("provider", "model")
            .annotate(rows=Count("id"), chars=Sum("prompt_chars"), tokens=Sum("prompt_tokens")))
    return {(r["provider"], r["model"]): min(max(r["chars"] / r["tokens"], MIN_RATIO), MAX_RATIO)
            for r in rows if r["rows"] >= MIN_ROWS}


def token_ratios_update(now=None) -> int:
    """Store the learned ratios on their models (those that moved by CHANGE or more); the gateways
    reload their catalogs once if any did. Returns how many models changed."""
    ratios = learned_ratios(now)
    changed = 0
    for model in ProviderModel.objects.select_related("provider").filter(provider__name__in={p for p, _ in ratios}):
        ratio = ratios.get((model.provider.name, model.name))
        if ratio is None:
            continue
        if model.chars_per_token and abs(ratio - model.chars_per_token) < CHANGE * model.chars_per_token:
            continue
        ProviderModel.objects.filter(id=model.id).update(chars_per_token=round(ratio, 4))
        changed += 1
    if changed:
        log.info("learned characters per token for %d models", changed)
        config_announce()
    return changed
