from django.contrib import admin

from .models import Alert


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """Alerts as Alertmanager reports them: open ones first. Read-only (Alertmanager is the source)."""

    list_display = ("name", "status", "severity", "summary", "starts_at", "ends_at", "received_at")
    list_filter = ("status", "severity", "name")
    search_fields = ("name", "summary")
    readonly_fields = [f.name for f in Alert._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
