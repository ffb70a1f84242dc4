from django.contrib import admin

from .models import PromptLog


@admin.register(PromptLog)
class PromptLogAdmin(admin.ModelAdmin):
    """Read-only: rows are written masked by the gateway and deleted by their retention task."""

    list_display = ["request_id", "created_at", "model", "organisation_id", "api_key_id"]
    list_filter = ["model"]
    search_fields = ["request_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # a large table: no COUNT(*) per page

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
