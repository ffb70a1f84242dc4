from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from apps.common.crypto import Undecryptable

from .forms import CredentialForm, CredentialFormSet, ProviderForm
from .models import Credential, HealthCheck, Provider, ProviderModel
from .services import config_announce, provider_check_health

MOVE_NEEDS_CREDENTIAL_RIGHTS = ("The new URL is on another origin (or TLS trust is weaker): its credentials' secrets "
                                "must be entered again, which needs the permission to change credentials.")


class AnnouncesConfig:
    """Admin writes of routing configuration reach every gateway process, as the services' do.
    (save_related follows every save_model, list_editable rows included.)"""

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        config_announce()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        config_announce()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        config_announce()


class CredentialInline(admin.TabularInline):
    model = Credential
    form = CredentialForm
    formset = CredentialFormSet
    extra = 0
    fields = ["name", "new_secrets", "stored", "max_concurrency", "requests_rate", "token_owner", "enabled"]
    readonly_fields = ["stored"]

    @admin.display(description="Stored secrets")
    def stored(self, obj):
        if isinstance(obj.secrets, Undecryptable):
            return "cannot decrypt — re-enter the secret"
        names = obj.secret_names() if obj.pk else []
        return ", ".join(f"{n}: set" for n in names) or "not set"


class ProviderModelInline(admin.TabularInline):
    model = ProviderModel
    extra = 0
    fields = ["name", "kind", "enabled", "input_price", "output_price", "cached_input_price", "context_window", "jurisdiction",
              "options"]


@admin.register(Provider)
class ProviderAdmin(AnnouncesConfig, admin.ModelAdmin):
    form = ProviderForm
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
        # The health page (history, breakers) is the console's, in apps.routing.admin.
        return format_html('<a href="{}"><span style="color:{}">{}</span> {}</a>', reverse("admin:routing_provider_health", args=[obj.pk]),
                           colour, "OK" if check.ok else "FAIL", check.checked_at.strftime("%H:%M:%S"))

    # A health check sends the provider's secrets to its URLs: only those who may change the
    # provider (and so its URLs and secrets) may make the gateway send them.
    @admin.action(description="Run health check now", permissions=["change"])
    def run_health_check(self, request, queryset):
        for provider in queryset:
            self._check(request, provider)

    def _check(self, request, provider):
        check = provider_check_health(provider)
        level = messages.SUCCESS if check.ok else messages.ERROR
        self.message_user(request, f"{provider.name}: {'ok' if check.ok else check.detail}", level)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        if obj is None or request.user.has_perm("providers.change_credential"):
            return form  # the credentials inline asks for the secrets again (CredentialFormSet)

        class StaysWithItsSecrets(form):
            """Without the right to re-enter credentials (no inline to do it in), an edit may
            not send the stored secrets anywhere new (Provider.moves_secrets_from)."""

            def clean(self):
                cleaned = super().clean()
                stored = self.instance
                moved = Provider(**{f: cleaned.get(f, getattr(stored, f))
                                    for f in ("base_url", "auth_url", "verify_tls", "ca_bundle")})
                if moved.moves_secrets_from(stored) and stored.credentials.exists():
                    raise ValidationError(MOVE_NEEDS_CREDENTIAL_RIGHTS)
                return cleaned

        return StaysWithItsSecrets

    def get_urls(self):
        view = self.admin_site.admin_view(require_POST(self.health_check_view))
        return [path("<int:object_id>/health-check/", view, name="providers_provider_health_check")] + super().get_urls()

    def health_check_view(self, request, object_id):
        provider = get_object_or_404(Provider, pk=object_id)
        if not self.has_change_permission(request, provider):
            raise PermissionDenied
        self._check(request, provider)
        return redirect(reverse("admin:providers_provider_change", args=[provider.pk]))


@admin.register(ProviderModel)
class ProviderModelAdmin(AnnouncesConfig, admin.ModelAdmin):
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
