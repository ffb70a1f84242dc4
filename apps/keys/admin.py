from django.contrib import admin, messages

from .models import ApiKey
from .services import key_create, key_revoke


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Only the prefix is ever shown; the plaintext appears once, in the message after creation."""

    list_display = ["name", "shown_prefix", "user", "organisation", "created_at", "revoked_at", "expires_at"]
    list_filter = ["revoked_at", "organisation"]
    search_fields = ["name", "prefix", "user__username"]
    raw_id_fields = ["user", "organisation"]
    list_select_related = ["user", "organisation"]
    fields = ["user", "organisation", "name", "allowed_models", "residency", "expires_at", "shown_prefix", "revoked_at", "created_at"]
    readonly_fields = ["shown_prefix", "revoked_at", "created_at"]
    actions = ["revoke"]

    @admin.display(description="Key")
    def shown_prefix(self, obj):
        return f"xr-{obj.prefix}-…" if obj.prefix else "(created on save)"

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, plaintext = key_create(
            user=obj.user, name=obj.name, organisation=obj.organisation, allowed_models=obj.allowed_models,
            residency=obj.residency, expires_at=obj.expires_at,
        )
        obj.pk, obj.prefix = key.pk, key.prefix
        self.message_user(request, f"New key (copy it now, it is not shown again): {plaintext}", messages.WARNING)

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            key_revoke(key)
