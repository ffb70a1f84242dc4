"""The toolkit registers its admin pages for our swapped models (OAUTH2_PROVIDER["*_ADMIN_CLASS"]); the
application's shows its organisation. Deleting a token here tells every gateway (services' receiver)."""

from django.contrib import admin
from oauth2_provider.admin import ApplicationAdmin as ToolkitApplicationAdmin

from .models import ExternalIdentity


class ApplicationAdmin(ToolkitApplicationAdmin):
    list_display = ("pk", "name", "organisation", "user", "client_type", "authorization_grant_type", "created")
    list_filter = ("client_type", "authorization_grant_type", "organisation")
    list_select_related = ("organisation", "user")
    raw_id_fields = ("user", "organisation")
    search_fields = ("name", "client_id", "organisation__name", "user__username")


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(admin.ModelAdmin):
    list_display = ["subject", "issuer", "user", "created_at"]
    list_filter = ["issuer"]
    list_select_related = ["user"]
    search_fields = ["subject", "user__username"]
    raw_id_fields = ["user"]
