from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"


class TwoFactorAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with XRouter's site (apps.accounts.admin_site): staff need the code step."""

    default = False  # INSTALLED_APPS names it; "apps.accounts" still means AccountsConfig
    default_site = "apps.accounts.admin_site.AdminSite"
