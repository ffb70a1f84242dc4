"""Credentials and extra headers are write-only in the admin: the form takes new values and never renders old ones."""

import json

from django import forms

from apps.common.crypto import Undecryptable

from .models import Credential, Provider, token_owner_problem

REENTER = ("The provider's URL now points to another origin, or its TLS trust is weaker: re-enter this secret "
           "(the stored one is not sent there).")


class ProviderForm(forms.ModelForm):
    """extra_headers are write-only like credentials: the box starts empty; left empty, the stored headers stay."""

    extra_headers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off"}),
        label="Extra headers",
        help_text='JSON object sent as headers on every call, e.g. {"X-Api-Key": "…"}. Stored encrypted; leave empty '
        "to keep what is stored, {} to remove them. Never shown back.",
    )

    class Meta:
        model = Provider
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["extra_headers"] = ""
        stored = self.instance.extra_headers if self.instance.pk else {}
        if isinstance(stored, Undecryptable):
            self.fields["extra_headers"].help_text += " Stored: cannot decrypt — re-enter them."
        elif stored:
            self.fields["extra_headers"].help_text += f" Stored: {', '.join(sorted(stored))}."

    def clean_extra_headers(self):
        raw = self.cleaned_data["extra_headers"].strip()
        if not raw:
            return self.instance.extra_headers if self.instance.pk else {}
        return _string_object(raw)


def _string_object(raw: str) -> dict:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(f"Not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise forms.ValidationError("Use a JSON object of string values.")
    return value


class CredentialForm(forms.ModelForm):
    new_secrets = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        label="Secrets",
        help_text='JSON object, e.g. {"authorization_key": "…", "scope": "GIGACHAT_API_PERS"}. '
        "Stored encrypted; leave empty to keep what is stored. Never shown back.",
    )

    class Meta:
        model = Credential
        fields = ["name", "max_concurrency", "requests_rate", "token_owner", "enabled"]

    def clean_new_secrets(self):
        raw = self.cleaned_data["new_secrets"].strip()
        if not raw:
            return None
        return _string_object(raw)

    def clean(self):
        cleaned = super().clean()
        # The inline formset has already given the instance its provider, carrying the kind submitted.
        try:
            kind = self.instance.provider.kind
        except Provider.DoesNotExist:
            kind = ""
        secrets = cleaned.get("new_secrets")
        if secrets is None:
            secrets = self.instance.secrets if isinstance(self.instance.secrets, dict) else {}
        problem = token_owner_problem(kind, secrets, cleaned.get("token_owner") or "")
        if problem:
            self.add_error("token_owner", problem)
        return cleaned

    def save(self, commit=True):
        if self.cleaned_data.get("new_secrets") is not None:
            self.instance.secrets = self.cleaned_data["new_secrets"]
        return super().save(commit=commit)


class CredentialFormSet(forms.BaseInlineFormSet):
    """Stored secrets stay with the origin they were entered for: moving base_url or auth_url to
    another scheme, host or port, or weakening TLS trust, needs every kept credential's secrets
    entered again."""

    def clean(self):
        super().clean()
        provider = self.instance  # already carries the submitted URLs
        stored = Provider.objects.filter(pk=provider.pk).first() if provider.pk else None
        if stored is None or not provider.moves_secrets_from(stored):
            return
        for form in self.forms:
            if not form.instance.pk or self._should_delete_form(form) or not hasattr(form, "cleaned_data"):
                continue
            if form.cleaned_data.get("new_secrets") is None:
                form.add_error("new_secrets", REENTER)
