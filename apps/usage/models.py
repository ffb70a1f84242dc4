from django.db import models

FALLBACK_CHAIN_MAX = 255  # the labels tried before this attempt, comma-separated, cut to the column


class UsageRecord(models.Model):
    """One upstream attempt of a gateway request, as billed (a cache hit, or a request refused
    before any attempt, is attempt 0). `(request_id, attempt, created_at)` is the writer's
    idempotency key: `request_id` is the client-visible id, `attempt` counts from 0 across
    retries and fallbacks, and `created_at` is the attempt's start, carried by the record itself
    (start and end records alike), so a redelivery lands on the same key. On PostgreSQL the
    table is partitioned by month of `created_at` (migration 0004; apps/usage/partitions.py)."""

    request_id = models.CharField(max_length=64)
    attempt = models.PositiveSmallIntegerField(default=0)
    fallback_chain = models.CharField(max_length=FALLBACK_CHAIN_MAX, blank=True,
                                      help_text="The targets tried before this attempt, in order.")
    provider_request_id = models.CharField(max_length=128, blank=True)
    # Plain ids, not foreign keys: billing rows outlive keys and must never fail to insert.
    api_key_id = models.BigIntegerField(null=True, db_index=True)
    key_prefix = models.CharField(max_length=16, blank=True)
    # Who made the request: an API key (api_key_id), an OAuth access token or an external identity
    # provider's JWT; principal_id is the key's, the access token's or (jwt) the user's id.
    principal = models.CharField(max_length=8, blank=True, default="key", choices=[
        ("key", "API key"), ("oauth", "OAuth access token"), ("jwt", "External JWT")])
    principal_id = models.BigIntegerField(null=True)
    user_id = models.BigIntegerField(null=True)
    organisation_id = models.BigIntegerField(null=True, db_index=True)
    endpoint = models.CharField(max_length=32, default="chat")
    provider = models.CharField(max_length=64, blank=True, db_index=True)
    model = models.CharField(max_length=200, blank=True)
    requested_model = models.CharField(max_length=200, blank=True)
    route = models.CharField(max_length=200, blank=True)
    stream = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    estimated = models.BooleanField(default=False, help_text="Counts estimated from text: the provider sent none.")
    prompt_chars = models.PositiveIntegerField(
        default=0, help_text="Characters of text in the prompt: with the provider's prompt_tokens, the model's "
                             "learned characters per token (apps/routing/token_ratio.py).")
    input_price = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    output_price = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    cached_input_price = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    cost = models.DecimalField(max_digits=16, decimal_places=6, default=0, help_text="Roubles.")
    latency_ms = models.FloatField(default=0)
    ttft_ms = models.FloatField(null=True)
    # ok, error, cache_hit, client_disconnected, client_stalled, client_cancelled, cancelled, or
    # worker_lost: the process died mid-attempt; tokens estimated from its start record.
    status = models.CharField(max_length=24, default="ok", db_index=True)
    http_status = models.PositiveSmallIntegerField(default=200)
    error_type = models.CharField(max_length=64, blank=True)
    cache_hit = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["request_id", "attempt", "created_at"], name="usage_request_attempt")]

    def __str__(self):
        return f"{self.request_id}.{self.attempt}" if self.attempt else self.request_id
