"""The personal-data policy (152-FZ) as the models store it and the request path carries it.

It lives in the floor, like apps.common.rates' Limits: keys, organisations and routing rules each hold
one (PersonalDataFields), and the key cache builds a `Policy` once per lookup, so the request path reads
an attribute, never the database. What a policy *does* to a request is apps.privacy's (the guardrail
pipeline); this module only says what was configured and which of several policies is the strictest.
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import models

# Ascending strictness. mask: the provider sees the text unchanged, the prompt log (if on) keeps it masked;
# pseudonymize: the provider sees placeholders, the client gets the originals back; redact: the provider
# sees placeholders and nothing is restored. Redact is the stricter of the last two: neither lets personal
# data reach the provider, and redact keeps it out of the answer as well.
MODES = ("off", "mask", "pseudonymize", "redact")
MODE_CHOICES = [
    ("off", "Off"),
    ("mask", "Mask in logs only"),
    ("pseudonymize", "Pseudonymize (restored in the answer)"),
    ("redact", "Redact before the provider"),
]
RANK = {mode: i for i, mode in enumerate(MODES)}
PD_FIELDS = ("pd_policy", "pd_names", "blocked_terms")  # PersonalDataFields' (admin forms, serializers)
MAX_TERMS = 200
MAX_TERM_CHARS = 200


def validate_terms(value) -> None:
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        raise ValidationError('blocked_terms is a list of words or phrases, e.g. ["insider", "пароль"].')
    if len(value) > MAX_TERMS or any(len(t) > MAX_TERM_CHARS for t in value):
        raise ValidationError(f"blocked_terms holds at most {MAX_TERMS} terms of at most {MAX_TERM_CHARS} characters.")


class PolicyField(models.CharField):
    def formfield(self, **kwargs):
        field = super().formfield(**kwargs)
        # A form that leaves the policy out (or empty) means off, never a refusal or an empty mode.
        field.required, field.empty_value = False, "off"
        return field


class PersonalDataFields(models.Model):
    """The policy fields of a key, an organisation or a routing rule (apps.privacy applies them)."""

    pd_policy = PolicyField(
        "personal-data policy", max_length=16, choices=MODE_CHOICES, default="off",
        help_text="What happens to personal data in prompts (152-FZ). The strictest policy of the key, its "
                  "organisation and the routing rule wins.")
    pd_names = models.BooleanField(
        "detect names", default=False,
        help_text="Also detect persons, addresses and organisations (Natasha; about 9 ms per 1,000 characters).")
    blocked_terms = models.JSONField(
        default=list, blank=True, validators=[validate_terms],
        help_text="Requests whose messages contain any of these terms (case-insensitive) are refused before the call.")

    class Meta:
        abstract = True


@dataclass(frozen=True, slots=True)
class Policy:
    """One configured policy. `outside`: it applies only to targets of another jurisdiction (a rule's
    pd_jurisdiction); empty: to every target."""

    mode: str = "off"
    names: bool = False
    terms: tuple = ()
    outside: str = ""

    def applies_to(self, jurisdiction: str) -> bool:
        return not self.outside or jurisdiction != self.outside

    @classmethod
    def of(cls, row, outside: str = "") -> "Policy | None":
        """The policy of a row with PersonalDataFields; None when it asks for nothing (the common case)."""
        terms = tuple(t.strip().casefold() for t in row.blocked_terms or () if t.strip())
        if row.pd_policy == "off" and not terms:
            return None
        return cls(mode=row.pd_policy, names=row.pd_names, terms=terms, outside=outside)


def policies_of(*rows) -> tuple:
    """The policies of several rows (a key and its organisation), leaving out those that ask for nothing."""
    return tuple(p for p in (Policy.of(r) for r in rows if r is not None) if p is not None)


def strictest(policies, jurisdiction: str) -> tuple[str, bool]:
    """(mode, names) for a target of `jurisdiction`: the strictest mode among the policies that apply
    to it, and names if any applicable policy at mask or above asks for them."""
    mode, names = "off", False
    for policy in policies:
        if not policy.applies_to(jurisdiction):
            continue
        if RANK[policy.mode] > RANK[mode]:
            mode = policy.mode
        names = names or (policy.names and policy.mode != "off")
    return mode, names and mode != "off"
