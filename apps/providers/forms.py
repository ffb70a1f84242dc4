"""Credentials are write-only in the admin: the form takes new values and never renders old ones."""

import json

from django import forms

from .models import Credential


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
        fields = ["name", "max_concurrency", "enabled"]

    def clean_new_secrets(self):
        raw = self.cleaned_data["new_secrets"].strip()
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg}") from None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise forms.ValidationError("Use a JSON object of string values.")
        return value

    def save(self, commit=True):
        if self.cleaned_data.get("new_secrets") is not None:
            self.instance.secrets = self.cleaned_data["new_secrets"]
        return super().save(commit=commit)
