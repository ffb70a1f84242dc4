"""Billing in the admin: prices, VAT rates, budget settings and notices, roll-ups, and the statements
(top spenders across organisations, a printable monthly statement per organisation, its CSV), which
staff with billing.view_statement (the finance and auditor groups) may read."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils import timezone

from apps.accounts.models import Organisation
from apps.common.fetch import UnsafeURL, check_url

from . import selectors, services, webhooks
from .documents import parse_month, statement_csv
from .models import BillingSettings, BudgetNotice, DailyRollup, ModelPrice, VatRate

STATEMENT_PERMISSION = "billing.view_statement"
ORGANISATION_LINKS = 500  # beyond, a statement's URL is …/statements/<organisation id>/<YYYY-MM>/


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ["model", "effective_from", "input_price", "output_price", "cached_input_price", "includes_vat", "note"]
    list_filter = ["includes_vat", "model__provider"]
    search_fields = ["model__name", "model__provider__name", "note"]
    date_hierarchy = "effective_from"

    def save_model(self, request, obj, form, change):
        # The price in effect today becomes the model's price at once (and every gateway reloads).
        services.price_save(obj)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        services.current_prices_apply()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        services.current_prices_apply()


@admin.register(VatRate)
class VatRateAdmin(admin.ModelAdmin):
    list_display = ["effective_from", "rate"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.current_prices_apply()  # prices without VAT are charged with today's rate


class BillingSettingsForm(forms.ModelForm):
    new_secret = forms.BooleanField(required=False, help_text="Make a new signing secret (shown once, after saving).")

    class Meta:
        model = BillingSettings
        fields = ["organisation", "thresholds", "webhook_url"]

    def clean_webhook_url(self):
        url = self.cleaned_data["webhook_url"]
        if url:
            try:
                check_url(url)
            except UnsafeURL as exc:
                raise forms.ValidationError(str(exc)) from None
        return url


@admin.register(BillingSettings)
class BillingSettingsAdmin(admin.ModelAdmin):
    form = BillingSettingsForm
    list_display = ["organisation", "thresholds", "webhook_url", "has_secret"]
    search_fields = ["organisation__name"]

    @admin.display(boolean=True, description="signing secret")
    def has_secret(self, obj):
        return bool(obj.webhook_secret.get("secret"))

    def save_model(self, request, obj, form, change):
        secret = None
        if form.cleaned_data.get("new_secret") or (obj.webhook_url and not obj.webhook_secret.get("secret")):
            secret = webhooks.new_secret()
            obj.webhook_secret = {"secret": secret}
        super().save_model(request, obj, form, change)
        if secret:
            # Shown this once (like a new API key); stored encrypted, never shown again.
            messages.warning(request, f"The webhook signing secret: {secret} — copy it now, it is not shown again.")


@admin.register(BudgetNotice)
class BudgetNoticeAdmin(admin.ModelAdmin):
    list_display = ["created_at", "scope", "scope_id", "organisation_id", "month", "threshold", "spend", "budget",
                    "emailed", "webhook_status"]
    list_filter = ["scope", "threshold", "month"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DailyRollup)
class DailyRollupAdmin(admin.ModelAdmin):
    list_display = ["day", "organisation_id", "api_key_id", "cost_centre", "provider", "model", "requests",
                    "prompt_tokens", "completion_tokens", "cost"]
    list_filter = ["provider"]
    date_hierarchy = "day"
    show_full_result_count = False
    change_list_template = "admin/billing/dailyrollup/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # roll-ups are replaced by the roll-up task only

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("statements/", view(self.top_spenders_view), name="billing_top_spenders"),
            path("statements/<int:organisation_id>/<str:month>/", view(self.statement_view), name="billing_statement"),
            path("statements/<int:organisation_id>/<str:month>/csv/", view(self.statement_csv_view),
                 name="billing_statement_csv"),
            *super().get_urls(),
        ]

    def _month(self, text):
        try:
            return parse_month(text)
        except ValueError:
            raise Http404 from None

    def _check(self, request):
        if not request.user.has_perm(STATEMENT_PERMISSION):
            raise PermissionDenied

    def top_spenders_view(self, request):
        self._check(request)
        text = request.GET.get("month") or f"{timezone.localdate():%Y-%m}"
        month = self._month(text)
        rows = selectors.top_spenders(month, limit=50)
        by_provider: dict = {}
        for row in selectors.sums(month, selectors.next_month(month), by=("provider",)):
            by_provider[row["provider"]] = by_provider.get(row["provider"], 0) + row["cost"]
        for row in rows:
            row["url"] = (reverse("admin:billing_statement", args=[row["organisation_id"], f"{month:%Y-%m}"])
                          if row["organisation_id"] is not None else "")
        return render(request, "admin/billing/top_spenders.html", {
            **self.admin_site.each_context(request), "title": f"Top spenders, {month:%Y-%m}", "month": month,
            "rows": rows, "daily": selectors.spend_series(None, 30),
            "by_provider": sorted(by_provider.items(), key=lambda item: -item[1]), "organisations": Organisation.objects.order_by("name").values("id", "name")[:ORGANISATION_LINKS],
            "more": Organisation.objects.count() > ORGANISATION_LINKS})

    def statement_view(self, request, organisation_id, month):
        self._check(request)
        organisation = get_object_or_404(Organisation, id=organisation_id)
        statement = selectors.statement(organisation, self._month(month))
        return render(request, "admin/billing/statement.html", {
            **self.admin_site.each_context(request), "title": f"Statement: {organisation.name}, {statement.month:%Y-%m}",
            "statement": statement,
            "csv_url": reverse("admin:billing_statement_csv", args=[organisation.id, f"{statement.month:%Y-%m}"])})

    def statement_csv_view(self, request, organisation_id, month):
        self._check(request)
        organisation = get_object_or_404(Organisation, id=organisation_id)
        statement = selectors.statement(organisation, self._month(month))
        response = HttpResponse(statement_csv(statement), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="xrouter-statement-{organisation.id}-{statement.month:%Y-%m}.csv"'
        return response
