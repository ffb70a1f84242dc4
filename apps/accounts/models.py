from django.contrib.auth.models import AbstractUser
from django.db import models


class Organisation(models.Model):
    """A tenant: usage, budgets and cache scopes hang off it (the accounts issue fills it in)."""

    name = models.CharField(max_length=200, unique=True)
    # Inactive: every key of the organisation and of its members is refused (change it through
    # services.organisation_set_active, which tells every gateway process).
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class User(AbstractUser):
    organisation = models.ForeignKey(Organisation, null=True, blank=True, on_delete=models.SET_NULL, related_name="members")
