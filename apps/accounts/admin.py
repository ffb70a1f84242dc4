from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import Organisation, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "organisation", "is_staff", "is_active")
    list_filter = ("is_staff", "is_active", "organisation")
    list_select_related = ("organisation",)
    fieldsets = BaseUserAdmin.fieldsets + (("XRouter", {"fields": ("organisation",)}),)


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)
