from django import forms
from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path, reverse

from apps.providers.admin import AnnouncesConfig

from .console import overview
from .forms import RoutingRuleForm
from .models import Alias, RoutingRule
from .selectors import explain_route


def _overview_for(request):
    """The admin index's overview, for those who may see everyone's spend (billing's statement right)."""
    return overview() if request.user.has_perm("billing.view_statement") else None


admin.site.overview = _overview_for


@admin.register(Alias)
class AliasAdmin(AnnouncesConfig, admin.ModelAdmin):
    list_display = ["name", "target", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["name", "target"]


class RouteTestForm(forms.Form):
    model = forms.CharField(max_length=200, help_text="What the client asks for, e.g. xrouter/auto or gigachat/GigaChat-2-Max")
    key_prefix = forms.CharField(required=False, max_length=16, help_text="The 8 characters after xr- (empty: a key without restrictions)")
    tags = forms.CharField(required=False, max_length=500, help_text="Comma separated, as in x-xrouter-tags")
    tools = forms.BooleanField(required=False)
    stream = forms.BooleanField(required=False)
    prompt_tokens = forms.IntegerField(required=False, min_value=0, max_value=10_000_000,
                                       help_text="The prompt's size in tokens (or paste a prompt below)")
    max_tokens = forms.IntegerField(required=False, min_value=0, max_value=10_000_000, help_text="The answer's cap, if any")
    prompt = forms.CharField(required=False, max_length=1_000_000, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Only its size is used (about four characters a token)")


@admin.register(RoutingRule)
class RoutingRuleAdmin(AnnouncesConfig, admin.ModelAdmin):
    form = RoutingRuleForm
    list_display = ["name", "priority", "enabled", "match_model", "strategy", "target_list", "cache_ttl"]
    list_editable = ["priority", "enabled"]
    list_filter = ["enabled", "strategy"]
    search_fields = ["name", "match_model"]
    fieldsets = [
        (None, {"fields": ["name", "priority", "enabled"]}),
        ("Match (empty = any)", {"fields": ["match_model", "match_keys", "match_organisations", "match_tags",
                                           "match_tools", "match_stream", "min_prompt_tokens", "max_prompt_tokens"]}),
        ("Action", {"fields": ["strategy", "targets", "retries", "fallback_on", "deadline", "residency", "cache_ttl",
                               "context_fallback"]}),
    ]

    @admin.display(description="Targets")
    def target_list(self, obj):
        return ", ".join(f"{t.get('model')}×{t.get('weight', 1)}" for t in obj.targets)

    def get_urls(self):
        return [path("test-route/", self.admin_site.admin_view(self.test_route), name="routing_test_route")] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "test_route_url": reverse("admin:routing_test_route")}
        return super().changelist_view(request, extra_context)

    def test_route(self, request):
        """The rule tester: a sample request in; the rule that matches, the targets in the order they would be
        tried, and why every other rule and target was left out (explain_route). No provider is called."""
        form = RouteTestForm(request.POST or None)
        result = None
        if request.method == "POST" and form.is_valid():
            result = explain_route(**form.cleaned_data)
        context = {**self.admin_site.each_context(request), "title": "Rule tester", "form": form, "result": result,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/routing/test_route.html", context)
