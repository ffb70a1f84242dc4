from django.core.exceptions import ValidationError
from django.db import models


def validate_target(value: str) -> None:
    if "/" not in value or value.startswith("/") or value.endswith("/"):
        raise ValidationError("Use provider/model, e.g. gigachat/GigaChat-2-Max")


class Alias(models.Model):
    """A model name clients may use (e.g. gpt-4o) that stands for `provider/model`."""

    name = models.CharField(max_length=200, unique=True)
    target = models.CharField(max_length=300, validators=[validate_target])
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "aliases"

    def __str__(self):
        return f"{self.name} → {self.target}"
