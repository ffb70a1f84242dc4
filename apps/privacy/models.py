from django.db import models


class PromptLog(models.Model):
    """A logged prompt and its answer, with personal data masked before the row is written (never the
    raw text). Written only with XROUTER_LOG_PROMPTS on and a policy of `mask` or stricter; deleted after
    XROUTER_PROMPT_LOG_DAYS (prompt_log_retention_task)."""

    request_id = models.CharField(max_length=64)
    # Plain ids, as on usage rows: a log row must never fail to insert, and outlives nothing it names.
    api_key_id = models.BigIntegerField(null=True)
    organisation_id = models.BigIntegerField(null=True, db_index=True)
    model = models.CharField(max_length=200, blank=True)
    prompt = models.TextField()
    answer = models.TextField(blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.request_id
