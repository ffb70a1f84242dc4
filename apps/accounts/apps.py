from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"


class TwoFactorAdminConfig(admin_apps.SimpleAdminConfig):
    """django.contrib.admin with XRouter's site (apps.accounts.admin_site): staff need the code step.

    Simple: the admin modules are discovered by the URLconf (xrouter_project/urls.py), on a process's first
    request outside /v1, not at start-up — a worker that only serves /v1 never imports them (the admin,
    its forms and the OAuth toolkit's admin pull in ≈ 200 modules; README, "Performance")."""

    default = False  # INSTALLED_APPS names it; "apps.accounts" still means AccountsConfig
    default_site = "apps.accounts.admin_site.AdminSite"
