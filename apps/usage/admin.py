from django.contrib import admin

from .models import UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ["created_at", "request_id", "attempt", "principal", "key_prefix", "provider", "model", "status", "prompt_tokens",
                    "completion_tokens", "cost", "estimated", "latency_ms"]
    list_filter = ["status", "principal", "provider", "endpoint", "estimated", "cache_hit"]
    # A request id finds every attempt of that request (one row each; `fallback_chain` shows the order).
    search_fields = ["request_id", "provider_request_id", "key_prefix", "model"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "request_id", "-attempt"]
    show_full_result_count = False  # the table is large; counting it would stall the page

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
