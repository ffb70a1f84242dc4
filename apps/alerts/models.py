from django.db import models


class Alert(models.Model):
    """One Prometheus alert as Alertmanager last reported it (identified by its fingerprint). Open alerts
    (firing) are shown in the admin; each start and each resolution is forwarded once (apps/alerts/tasks.py)."""

    FIRING, RESOLVED = "firing", "resolved"
    fingerprint = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200, db_index=True)
    status = models.CharField(max_length=16, choices=[(FIRING, "firing"), (RESOLVED, "resolved")], db_index=True)
    severity = models.CharField(max_length=32, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    starts_at = models.DateTimeField(null=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["status", "-starts_at"]

    def __str__(self):
        return f"{self.name} ({self.status})"
