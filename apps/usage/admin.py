from django.contrib import admin

from .models import UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ["created_at", "request_id", "principal", "key_prefix", "provider", "model", "status", "prompt_tokens",
                    "completion_tokens", "cost", "estimated", "latency_ms"]
    list_filter = ["status", "principal", "provider", "endpoint", "estimated", "cache_hit"]
    search_fields = ["request_id", "provider_request_id", "key_prefix", "model"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # the table is large; counting it would stall the page

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
