import fnmatch

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiKey(models.Model):
    """A client key `xr-<prefix>-<secret>`. Only the prefix and a SHA-256 of the whole key are stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    organisation = models.ForeignKey("accounts.Organisation", null=True, blank=True, on_delete=models.SET_NULL)
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    allowed_models = models.JSONField(
        default=list, blank=True, help_text='Globs such as "gigachat/*"; empty allows every model.'
    )
    residency = models.CharField(
        max_length=8, blank=True, help_text="If set (e.g. RU), requests never leave models of this jurisdiction."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} (xr-{self.prefix}-…)"

    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def allows(self, model: str) -> bool:
        return not self.allowed_models or any(fnmatch.fnmatchcase(model, pattern) for pattern in self.allowed_models)
