import datetime

import yaml
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from apps.audit.services import audit
from apps.common.crypto import decrypt_json, encrypt_json
from apps.providers.admin import AnnouncesConfig
from apps.providers.models import Provider

from .config_schema import ConfigError, parse_config
from .console import overview, provider_health
from .forms import RoutingRuleForm
from .models import Alias, ManualBreaker, RoutingRule
from .selectors import explain_route
from .services import breaker_clear, breaker_set, breaker_target_problem, config_diff, config_export, config_import_file


def _overview_for(request):
    """The admin index's overview, for those who may see everyone's spend (billing's statement right)."""
    return overview() if request.user.has_perm("billing.view_statement") else None


admin.site.overview = _overview_for


@admin.register(Alias)
class AliasAdmin(AnnouncesConfig, admin.ModelAdmin):
    list_display = ["name", "target", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["name", "target"]


CONFIG_MAX_BYTES = 1024 * 1024  # an uploaded configuration file, at most
CONFIG_SESSION_KEY = "xrouter_config_import"


class ConfigUploadForm(forms.Form):
    file = forms.FileField(required=False, help_text="YAML, as export_config writes it")
    text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8, "cols": 100}), max_length=CONFIG_MAX_BYTES,
                           help_text="…or paste it here")

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload is not None:
            if upload.size > CONFIG_MAX_BYTES:
                raise forms.ValidationError(f"The file is over {CONFIG_MAX_BYTES // 1024} KiB.")
            try:
                cleaned["text"] = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise forms.ValidationError("The file is not UTF-8 text.") from None
        if not cleaned.get("text", "").strip():
            raise forms.ValidationError("Choose a file or paste the configuration.")
        try:
            cleaned["config"] = parse_config(yaml.safe_load(cleaned["text"]))
        except yaml.YAMLError as exc:
            raise forms.ValidationError(f"Not valid YAML: {str(exc)[:300]}") from None
        except ConfigError as exc:
            raise forms.ValidationError(f"{exc}. Nothing was changed.") from None
        return cleaned


class ConfigAdminViews:
    """Import and export of the configuration (providers, models, aliases, rules, organisations' limits)
    from the admin: a preview of what a merge and what a replace would change, then either, audited.
    Between preview and apply the file waits in the session, encrypted (it may hold secrets), never in
    the page."""

    def config_urls(self):
        site = self.admin_site
        return [path("config/", site.admin_view(self.config_import_view), name="routing_config_import"),
                path("config/export/", site.admin_view(self.config_export_view), name="routing_config_export")]

    def config_export_view(self, request):
        if not (request.user.has_perm("routing.view_routingrule") and request.user.has_perm("providers.view_provider")):
            raise PermissionDenied
        text = yaml.safe_dump(config_export(), sort_keys=False, allow_unicode=True)
        audit("config.exported", detail={"bytes": len(text)})
        response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="xrouter-config-{timezone.now():%Y%m%d-%H%M}.yaml"'
        return response

    def config_import_view(self, request):
        # An import writes providers, credentials, rules and organisations' limits: superusers only.
        if not request.user.is_superuser:
            raise PermissionDenied
        form, diffs = ConfigUploadForm(), None
        if request.method == "POST" and request.POST.get("apply") in ("merge", "replace"):
            return self._config_apply(request, replace=request.POST["apply"] == "replace")
        if request.method == "POST":
            form = ConfigUploadForm(request.POST, request.FILES)
            if form.is_valid():
                config = form.cleaned_data["config"]
                diffs = {mode: {"sections": diff, "changes": sum(map(len, diff.values()))} for mode, diff in
                         (("merge", config_diff(config)), ("replace", config_diff(config, replace=True)))}
                request.session[CONFIG_SESSION_KEY] = encrypt_json({"text": form.cleaned_data["text"]})
            form.data = form.data.copy()
            form.data.pop("text", None)  # the file may hold secrets: never echoed into the page
        context = {**self.admin_site.each_context(request), "title": "Import or export the configuration", "form": form,
                   "diffs": diffs, "opts": self.model._meta}
        return TemplateResponse(request, "admin/routing/config_import.html", context)

    def _config_apply(self, request, *, replace: bool):
        stashed = request.session.pop(CONFIG_SESSION_KEY, None)
        if not stashed:
            messages.error(request, "Nothing to import: preview a file first.")
            return redirect("admin:routing_config_import")
        try:
            counts = config_import_file(parse_config(yaml.safe_load(decrypt_json(stashed)["text"])), replace=replace)
        except (ConfigError, ValidationError) as exc:
            messages.error(request, f"Not imported: {exc}. Nothing was changed.")
            return redirect("admin:routing_config_import")
        mode = "replace" if replace else "merge"
        audit("config.imported", detail={"mode": mode, **{k.replace(" ", "_"): v for k, v in counts.items()}})
        messages.success(request, f"Imported ({mode}): " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        return redirect("admin:routing_config_import")


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
class RoutingRuleAdmin(ConfigAdminViews, AnnouncesConfig, admin.ModelAdmin):
    form = RoutingRuleForm
    list_display = ["name", "priority", "enabled", "match_model", "strategy", "target_list", "cache_ttl"]
    list_editable = ["priority", "enabled"]
    list_filter = ["enabled", "strategy", "pd_policy"]
    search_fields = ["name", "match_model"]
    fieldsets = [
        (None, {"fields": ["name", "priority", "enabled"]}),
        ("Match (empty = any)", {"fields": ["match_model", "match_keys", "match_organisations", "match_tags",
                                           "match_tools", "match_stream", "min_prompt_tokens", "max_prompt_tokens"]}),
        ("Action", {"fields": ["strategy", "targets", "retries", "fallback_on", "deadline", "residency", "cache_ttl",
                               "context_fallback"]}),
        ("Personal data (152-FZ)", {"fields": ["pd_policy", "pd_names", "pd_jurisdiction", "blocked_terms"]}),
    ]

    @admin.display(description="Targets")
    def target_list(self, obj):
        return ", ".join(f"{t.get('model')}×{t.get('weight', 1)}" for t in obj.targets)

    def get_urls(self):
        return [path("test-route/", self.admin_site.admin_view(self.test_route), name="routing_test_route"),
                *self.config_urls()] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "test_route_url": reverse("admin:routing_test_route"),
                         "config_url": reverse("admin:routing_config_import")}
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


class BreakerForm(forms.Form):
    """Open or close a breaker by hand from a provider's health page."""

    target = forms.ChoiceField(help_text="The whole provider, or one of its models")
    opened = forms.TypedChoiceField(choices=[("1", "Open: send nothing there"), ("0", "Closed: ignore the automatic breaker")],
                                    coerce=lambda v: v == "1", label="State")
    minutes = forms.IntegerField(required=False, min_value=1, max_value=60 * 24 * 365, help_text="Empty: until released")
    reason = forms.CharField(required=False, max_length=300)

    def __init__(self, provider, *args, **kwargs):
        super().__init__(*args, **kwargs)
        models = provider.models.order_by("name").values_list("name", flat=True)
        self.fields["target"].choices = [(provider.name, f"{provider.name} (every model)")] + [
            (f"{provider.name}/{m}", f"{provider.name}/{m}") for m in models]


class ManualBreakerForm(forms.ModelForm):
    class Meta:
        model = ManualBreaker
        fields = ["target", "open", "until", "reason"]

    def clean_target(self):
        target = self.cleaned_data["target"].strip()
        problem = breaker_target_problem(target)
        if problem:
            raise forms.ValidationError(problem)
        return target


@admin.register(ManualBreaker)
class ManualBreakerAdmin(admin.ModelAdmin):
    """Breakers set by hand; every write goes through breaker_set / breaker_clear (stored, announced,
    audited). Each provider's health page shows them beside its health-check history."""

    form = ManualBreakerForm
    list_display = ["target", "open", "until", "in_force_now", "reason", "set_by", "set_at"]
    list_filter = ["open"]
    search_fields = ["target", "reason"]
    readonly_fields = ["set_by", "set_at"]

    def get_readonly_fields(self, request, obj=None):
        # breaker_set keys on the target: another target is another breaker, set from the add form.
        return [*self.readonly_fields, "target"] if obj is not None else self.readonly_fields

    @admin.display(boolean=True, description="In force")
    def in_force_now(self, obj):
        return obj.in_force(timezone.now())

    def save_model(self, request, obj, form, change):
        saved = breaker_set(obj.target, opened=obj.open, until=obj.until, reason=obj.reason, actor=request.user)
        obj.pk, obj.set_by, obj.set_at = saved.pk, saved.set_by, saved.set_at

    def delete_model(self, request, obj):
        breaker_clear(obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for breaker in queryset:
            breaker_clear(breaker, actor=request.user)

    def get_urls(self):
        view = self.admin_site.admin_view(self.provider_health)
        return [path("provider/<int:provider_id>/health/", view, name="routing_provider_health")] + super().get_urls()

    def provider_health(self, request, provider_id):
        """A provider's health-check history, its targets' breakers (this process's automatic ones and those
        set by hand), and the form that sets one by hand."""
        provider = get_object_or_404(Provider, pk=provider_id)
        if not request.user.has_perm("providers.view_provider"):
            raise PermissionDenied
        may_set = self.has_add_permission(request) and self.has_change_permission(request)
        form = BreakerForm(provider, request.POST or None)
        if request.method == "POST":
            if not may_set:
                raise PermissionDenied
            release = request.POST.get("release")
            if release:
                breaker = get_object_or_404(ManualBreaker, pk=release)
                breaker_clear(breaker, actor=request.user)
                messages.success(request, f"{breaker.target}: back to its automatic breaker.")
                return redirect(request.path)
            if form.is_valid():
                data = form.cleaned_data
                until = timezone.now() + datetime.timedelta(minutes=data["minutes"]) if data["minutes"] else None
                breaker_set(data["target"], opened=data["opened"], until=until, reason=data["reason"], actor=request.user)
                messages.success(request, f"{data['target']}: {'opened' if data['opened'] else 'closed'} by hand.")
                return redirect(request.path)
        context = {**self.admin_site.each_context(request), "title": f"Health of {provider.name}", "provider": provider,
                   "form": form, "may_set": may_set, "opts": self.model._meta, **provider_health(provider)}
        return TemplateResponse(request, "admin/routing/provider_health.html", context)

