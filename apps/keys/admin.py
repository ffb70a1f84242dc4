from django import forms
from django.contrib import admin, messages

from apps.common.rates import LIMIT_FIELDS

from .models import SCOPES, ApiKey, default_scopes
from .services import key_create, key_delete, key_revoke, key_update


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=[(s, s) for s in SCOPES], initial=default_scopes,
                                       widget=forms.CheckboxSelectMultiple, required=False)

    class Meta:
        model = ApiKey
        fields = ["user", "organisation", "name", "scopes", "allowed_models", "residency", "expires_at", *LIMIT_FIELDS]

    def clean_scopes(self):
        return [s for s in SCOPES if s in self.cleaned_data["scopes"]]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Only the prefix is ever shown; the plaintext appears once, in the message after creation.

    Every write goes through the services, so it reaches every gateway process's key cache;
    issuing a key for someone else needs keys.issue_for_others (key_create checks it)."""

    form = ApiKeyForm
    list_display = ["name", "shown_prefix", "user", "organisation", "scopes", "parent", "created_at", "revoked_at",
                    "expires_at"]
    list_filter = ["revoked_at", "organisation"]
    search_fields = ["name", "prefix", "user__username"]
    raw_id_fields = ["user", "organisation"]
    list_select_related = ["user", "organisation", "parent"]
    fields = ["user", "organisation", "name", "scopes", "allowed_models", "residency", "expires_at", *LIMIT_FIELDS,
              "shown_prefix", "parent", "revoked_at", "created_at"]
    readonly_fields = ["shown_prefix", "parent", "revoked_at", "created_at"]
    actions = ["revoke"]

    @admin.display(description="Key")
    def shown_prefix(self, obj):
        return f"xr-{obj.prefix}-…" if obj.prefix else "(created on save)"

    def save_model(self, request, obj, form, change):
        if change:
            key_update(obj, [f for f in form.changed_data if f in form.Meta.fields], actor=request.user)
            return
        key, plaintext = key_create(
            user=obj.user, name=obj.name, organisation=obj.organisation, allowed_models=obj.allowed_models,
            residency=obj.residency, expires_at=obj.expires_at, scopes=obj.scopes, issued_by=request.user,
            **{field: getattr(obj, field) for field in LIMIT_FIELDS},
        )
        obj.pk, obj.prefix = key.pk, key.prefix
        self.message_user(request, f"New key (copy it now, it is not shown again): {plaintext}", messages.WARNING)

    def delete_model(self, request, obj):
        key_delete(obj)

    def delete_queryset(self, request, queryset):
        for key in queryset:
            key_delete(key)

    @admin.action(description="Revoke selected keys (and the keys they created)", permissions=["change"])
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            key_revoke(key)
