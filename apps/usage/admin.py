from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse

from .models import UsageRecord
from .selectors import MAX_REQUEST_ID, request_attempts, request_lookup


class RequestLookupForm(forms.Form):
    request_id = forms.CharField(max_length=MAX_REQUEST_ID + len("chatcmpl-"), label="x-request-id",
                                 help_text="The id a client got in its x-request-id header (or its chatcmpl- id)")


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

    def get_urls(self):
        view = self.admin_site.admin_view(self.find_request)
        return [path("find/", view, name="usage_request_lookup")] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "request_lookup_url": reverse("admin:usage_request_lookup")}
        return super().changelist_view(request, extra_context)

    def find_request(self, request):
        """One request by its x-request-id: how it went, its route and every attempt (usage rows), never content."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = RequestLookupForm(request.GET or None)
        summary, attempts, searched = None, [], False
        if form.is_valid():
            searched = True
            attempts = request_attempts(form.cleaned_data["request_id"])
            summary = request_lookup(form.cleaned_data["request_id"], rows=attempts)
        context = {**self.admin_site.each_context(request), "title": "Find a request", "form": form, "summary": summary,
                   "attempts": attempts, "searched": searched, "opts": self.model._meta}
        return TemplateResponse(request, "admin/usage/find_request.html", context)

    def has_change_permission(self, request, obj=None):
        return False
