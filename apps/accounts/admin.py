from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import Organisation, User
from .services import organisation_delete, organisation_set_active, user_delete, user_set_active


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "organisation", "is_staff", "is_active")
    list_filter = ("is_staff", "is_active", "organisation")
    list_select_related = ("organisation",)
    fieldsets = BaseUserAdmin.fieldsets + (("XRouter", {"fields": ("organisation",)}),)
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

    @admin.action(description="Deactivate selected users (their keys are refused at once)")
    def deactivate(self, request, queryset):
        for user in queryset:
            user_set_active(user, False)

    @admin.action(description="Activate selected users")
    def activate(self, request, queryset):
        for user in queryset:
            user_set_active(user, True)


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ("name", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name",)
    actions = ["deactivate", "activate"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data:
            organisation_set_active(obj, obj.is_active)

    def delete_model(self, request, obj):
        organisation_delete(obj)

    def delete_queryset(self, request, queryset):
        for organisation in queryset:
            organisation_delete(organisation)

    @admin.action(description="Deactivate selected organisations (every key of theirs is refused at once)")
    def deactivate(self, request, queryset):
        for organisation in queryset:
            organisation_set_active(organisation, False)

    @admin.action(description="Activate selected organisations")
    def activate(self, request, queryset):
        for organisation in queryset:
            organisation_set_active(organisation, True)
