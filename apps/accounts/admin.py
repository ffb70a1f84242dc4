from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from apps.common.client_address import canonical_networks
from apps.common.personal_data import PD_FIELDS
from apps.common.rates import KEY_LIMIT_FIELDS

from .models import Invitation, Membership, Organisation, User
from .services import (
    invitation_revoke,
    organisation_delete,
    organisation_limits_announce,
    organisation_set_active,
    user_delete,
    user_set_active,
    user_settle_default_organisation,
)


class MembershipInline(admin.TabularInline):
    """Operators edit memberships directly: the roles' rules bind members (the API, the portal), not operators."""

    model = Membership
    extra = 0
    readonly_fields = ["created_at"]


class OrganisationMembershipInline(MembershipInline):
    fields = ["user", "role", "created_at"]
    raw_id_fields = ["user"]


class UserMembershipInline(MembershipInline):
    fields = ["organisation", "role", "created_at"]


class KeepsDefaultOrganisations:
    """After memberships change in an inline, each user's default organisation is still one of theirs, and
    every process re-checks their keys."""

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        if formset.model is Membership:
            changed = [membership for membership, _fields in formset.changed_objects]  # a role may refuse keys
            for membership in [*formset.new_objects, *formset.deleted_objects, *changed]:
                user_settle_default_organisation(User.objects.get(pk=membership.user_id))


@admin.register(User)
class UserAdmin(KeepsDefaultOrganisations, BaseUserAdmin):
    list_display = ("username", "email", "organisation", "is_staff", "is_active")
    list_filter = ("is_staff", "is_active", "organisation")
    list_select_related = ("organisation",)
    fieldsets = BaseUserAdmin.fieldsets + (("XRouter", {"fields": ("organisation",)}),)
    inlines = [UserMembershipInline]
    actions = ["deactivate", "activate"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and {"is_active", "organisation"} & set(form.changed_data):
            user_set_active(obj, obj.is_active)  # tells every gateway process about the user's keys

    def delete_model(self, request, obj):
        user_delete(obj)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            user_delete(user)

    # allowed_permissions: without it, anyone who may only view users (auditor, support) could run the action.
    @admin.action(description="Deactivate selected users (their keys are refused at once)", permissions=["change"])
    def deactivate(self, request, queryset):
        for user in queryset:
            user_set_active(user, False)

    @admin.action(description="Activate selected users", permissions=["change"])
    def activate(self, request, queryset):
        for user in queryset:
            user_set_active(user, True)


class OrganisationForm(forms.ModelForm):
    class Meta:
        model = Organisation
        fields = "__all__"

    def clean_allowed_ips(self):
        return canonical_networks(self.cleaned_data["allowed_ips"] or [])  # an empty box: any address


@admin.register(Organisation)
class OrganisationAdmin(KeepsDefaultOrganisations, admin.ModelAdmin):
    form = OrganisationForm
    list_display = ("name", "is_active", "residency", "created_at")
    list_filter = ("is_active", "residency", "pd_policy")
    search_fields = ("name",)
    fieldsets = [
        (None, {"fields": ["name", "is_active"]}),
        ("Policy (bounds keys created from now on)", {"fields": ["allowed_models", "residency"]}),
        ("Networks (every key and token, at once)", {"fields": ["allowed_ips"]}),
        ("Personal data (152-FZ; applies to every key of the organisation at once)", {"fields": list(PD_FIELDS)}),
        ("Limits and budget (all the organisation's keys together; empty: unlimited)",
         {"fields": list(KEY_LIMIT_FIELDS)}),
    ]
    inlines = [OrganisationMembershipInline]
    actions = ["deactivate", "activate"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data:
            organisation_set_active(obj, obj.is_active)
        if change and {*KEY_LIMIT_FIELDS, *PD_FIELDS, "allowed_ips"} & set(form.changed_data):
            organisation_limits_announce(obj)  # the cached credentials carry them

    def delete_model(self, request, obj):
        organisation_delete(obj)

    def delete_queryset(self, request, queryset):
        for organisation in queryset:
            organisation_delete(organisation)

    @admin.action(description="Deactivate selected organisations (every key of theirs is refused at once)",
                  permissions=["change"])
    def deactivate(self, request, queryset):
        for organisation in queryset:
            organisation_set_active(organisation, False)

    @admin.action(description="Activate selected organisations", permissions=["change"])
    def activate(self, request, queryset):
        for organisation in queryset:
            organisation_set_active(organisation, True)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invitations are made in the portal (their link goes only into the e-mail); here they are read and revoked."""

    list_display = ("email", "organisation", "role", "invited_by", "created_at", "expires_at", "accepted_at")
    list_filter = ("role", "created_at")
    search_fields = ("email", "organisation__name")
    list_select_related = ("organisation", "invited_by")
    fields = ("organisation", "email", "role", "invited_by", "created_at", "expires_at", "accepted_at", "accepted_by")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        invitation_revoke(obj)

    def delete_queryset(self, request, queryset):
        for invitation in queryset:
            invitation_revoke(invitation)
