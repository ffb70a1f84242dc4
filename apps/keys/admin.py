import datetime

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect

from apps.common.personal_data import PD_FIELDS
from apps.common.rates import KEY_LIMIT_FIELDS

from .models import SCOPES, ApiKey, default_scopes
from .selectors import TOKEN_SHAPE
from .services import key_create, key_delete, key_revoke, key_rotate, key_update


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=[(s, s) for s in SCOPES], initial=default_scopes,
                                       widget=forms.CheckboxSelectMultiple, required=False)

    class Meta:
        model = ApiKey
        fields = ["user", "organisation", "name", "scopes", "allowed_models", "allowed_ips", "residency", "expires_at",
                  *KEY_LIMIT_FIELDS, "model_limits", "cost_centre", *PD_FIELDS]

    def clean_scopes(self):
        return [s for s in SCOPES if s in self.cleaned_data["scopes"]]

    def clean_allowed_ips(self):
        return self.cleaned_data["allowed_ips"] or []  # an empty box: any address


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Only the prefix is ever shown; the plaintext appears once, in the message after creation.

    Every write goes through the services, so it reaches every gateway process's key cache;
    issuing a key for someone else needs keys.issue_for_others (key_create checks it)."""

    form = ApiKeyForm
    list_display = ["name", "shown_prefix", "user", "organisation", "scopes", "parent", "created_at", "revoked_at",
                    "expires_at", "last_used_at"]
    list_filter = ["revoked_at", "pd_policy", "organisation"]
    search_fields = ["name", "prefix", "user__username"]
    raw_id_fields = ["user", "organisation"]
    list_select_related = ["user", "organisation", "parent"]
    fields = ["user", "organisation", "name", "scopes", "allowed_models", "allowed_ips", "residency", "expires_at",
              *KEY_LIMIT_FIELDS, "model_limits", "cost_centre", *PD_FIELDS, "shown_prefix", "parent", "revoked_at",
              "created_at", "last_used_at"]
    readonly_fields = ["shown_prefix", "parent", "revoked_at", "created_at", "last_used_at"]
    actions = ["revoke", "rotate_at_once", "rotate_after_a_day", "rotate_after_a_week"]

    @admin.display(description="Key")
    def shown_prefix(self, obj):
        return f"xr-{obj.prefix}-…" if obj.prefix else "(created on save)"

    def changelist_view(self, request, extra_context=None):
        # A whole key pasted into the search box is looked up by its prefix: the secret leaves the address (and
        # so the page's links and any log of it) at once.
        pasted = TOKEN_SHAPE.fullmatch(request.GET.get("q", "").strip())
        if pasted:
            query = request.GET.copy()
            query["q"] = pasted.group(1)
            return redirect(f"{request.path}?{query.urlencode()}")
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        if change:
            key_update(obj, [f for f in form.changed_data if f in form.Meta.fields], actor=request.user)
            return
        key, plaintext = key_create(
            user=obj.user, name=obj.name, organisation=obj.organisation, allowed_models=obj.allowed_models,
            residency=obj.residency, expires_at=obj.expires_at, scopes=obj.scopes, allowed_ips=obj.allowed_ips,
            cost_centre=obj.cost_centre, issued_by=request.user, model_limits=obj.model_limits,
            **{field: getattr(obj, field) for field in (*KEY_LIMIT_FIELDS, *PD_FIELDS)},
        )
        obj.pk, obj.prefix = key.pk, key.prefix
        self.message_user(request, f"New key (copy it now, it is not shown again): {plaintext}", messages.WARNING)

    def delete_model(self, request, obj):
        key_delete(obj)

    def delete_queryset(self, request, queryset):
        for key in queryset:
            key_delete(key)

    @admin.action(description="Revoke selected keys (and the keys they created)", permissions=["change"])
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            key_revoke(key)

    def _rotate(self, request, queryset, grace: datetime.timedelta) -> None:
        """The same service as the API and the portal: someone else's key needs keys.issue_for_others."""
        for key in queryset:
            try:
                new, plaintext = key_rotate(key, grace=grace, by=request.user)
            except (PermissionDenied, ValidationError) as exc:
                self.message_user(request, f"{key}: {' '.join(getattr(exc, 'messages', None) or [str(exc)])}",
                                  messages.ERROR)
                continue
            self.message_user(request, f"{key} is replaced by a new key (copy it now, it is not shown again): "
                                       f"{plaintext}", messages.WARNING)

    @admin.action(description="Rotate selected keys: the old ones are refused at once", permissions=["change"])
    def rotate_at_once(self, request, queryset):
        self._rotate(request, queryset, datetime.timedelta(0))

    @admin.action(description="Rotate selected keys: the old ones work for 1 more day", permissions=["change"])
    def rotate_after_a_day(self, request, queryset):
        self._rotate(request, queryset, datetime.timedelta(days=1))

    @admin.action(description="Rotate selected keys: the old ones work for 7 more days", permissions=["change"])
    def rotate_after_a_week(self, request, queryset):
        self._rotate(request, queryset, datetime.timedelta(days=7))
