"""The audit log: who did what security-relevant, when and from where. Append-only — the model and
its querysets refuse updates and deletes, and on PostgreSQL a trigger refuses them too (migration
0001), so neither a bug nor the admin can rewrite history. Plain ids, not foreign keys: an event
outlives the user, key or provider it names (and a cascade would be a delete)."""

from django.db import models


class AppendOnly(Exception):
    """An audit event cannot be changed or deleted."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly("The audit log is append-only: events cannot be changed.")

    def delete(self):
        raise AppendOnly("The audit log is append-only: events cannot be deleted.")

    _raw_delete = delete


class AuditEvent(models.Model):
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=64, db_index=True, help_text='e.g. "login.failed", "key.revoked".')
    actor_id = models.BigIntegerField(null=True, blank=True, help_text="The acting user's id (empty: the system).")
    actor = models.CharField(max_length=150, blank=True, help_text="The actor as it was named then.")
    ip = models.GenericIPAddressField(null=True, blank=True, help_text="The client address (trusted proxies resolved).")
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target = models.CharField(max_length=200, blank=True, help_text="The target as it was named then.")
    detail = models.JSONField(default=dict, blank=True, help_text="What changed; never a secret.")

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.target}".strip()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnly("The audit log is append-only: events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("The audit log is append-only: events cannot be deleted.")
