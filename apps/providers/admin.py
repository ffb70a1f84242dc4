from django.contrib import admin, messages
from django.utils.html import format_html

from .forms import CredentialForm
from .models import Credential, HealthCheck, Provider, ProviderModel
from .services import provider_check_health


class CredentialInline(admin.TabularInline):
    model = Credential
    form = CredentialForm
    extra = 0
    fields = ["name", "new_secrets", "stored", "max_concurrency", "enabled"]
    readonly_fields = ["stored"]

    @admin.display(description="Stored secrets")
    def stored(self, obj):
        names = obj.secret_names() if obj.pk else []
        return ", ".join(f"{n}: set" for n in names) or "not set"


class ProviderModelInline(admin.TabularInline):
    model = ProviderModel
    extra = 0
    fields = ["name", "kind", "enabled", "input_price", "output_price", "cached_input_price", "context_window", "jurisdiction"]


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "base_url", "enabled", "jurisdiction", "model_count", "last_health"]
    list_filter = ["kind", "enabled", "jurisdiction"]
    search_fields = ["name", "base_url"]
    inlines = [CredentialInline, ProviderModelInline]
    actions = ["run_health_check"]

    @admin.display(description="Models")
    def model_count(self, obj):
        return obj.models.count()

    @admin.display(description="Health")
    def last_health(self, obj):
        check = obj.health_checks.first()
        if check is None:
            return "—"
        colour = "green" if check.ok else "red"
        return format_html('<span style="color:{}">{}</span> {}', colour, "OK" if check.ok else "FAIL", check.checked_at.strftime("%H:%M:%S"))

    @admin.action(description="Run health check now")
    def run_health_check(self, request, queryset):
        for provider in queryset:
            check = provider_check_health(provider)
            level = messages.SUCCESS if check.ok else messages.ERROR
            self.message_user(request, f"{provider.name}: {'ok' if check.ok else check.detail}", level)


@admin.register(ProviderModel)
class ProviderModelAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", "enabled", "input_price", "output_price", "context_window", "jurisdiction"]
    list_filter = ["provider", "kind", "enabled"]
    search_fields = ["name", "provider__name"]
    list_select_related = ["provider"]


@admin.register(HealthCheck)
class HealthCheckAdmin(admin.ModelAdmin):
    list_display = ["provider", "ok", "latency_ms", "detail", "checked_at"]
    list_filter = ["provider", "ok"]
    list_select_related = ["provider"]
    show_full_result_count = False
