"""The admin site. Staff sign in through the portal's login (its lock-out, and its code step for those with
two-factor login). With XROUTER_ENV=production they need that code step (TOTP): a staff member without a
confirmed device is sent to the portal's security page to enrol one."""

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import reverse

from .selectors import staff_verified, two_factor_enabled


class AdminSite(admin.AdminSite):
    index_template = "admin/xrouter_index.html"
    # The index's overview: a callable(request) → its context or None (not for this user), set by
    # apps.routing.admin (the console's reads live above this app, which sits at the bottom of the imports).
    overview = None

    def index(self, request, extra_context=None):
        if self.overview is not None:
            extra_context = {**(extra_context or {}), "overview": self.overview(request)}
        return super().index(request, extra_context)

    def has_permission(self, request):
        return super().has_permission(request) and staff_verified(request.user)

    def login(self, request, extra_context=None):
        # Never Django's own admin login form: it would sign staff in with the password alone, skipping the
        # code step of those who turned two-factor login on (in development too) and the portal's lock-out.
        next_url = request.GET.get("next") or reverse("admin:index")
        user = request.user
        if not user.is_authenticated:
            # One login for everybody: the portal's, with its lock-out and code step.
            return redirect_to_login(next_url, reverse("login"))
        if not (user.is_active and user.is_staff):
            raise PermissionDenied  # signed in, but no admin: the portal's login would only send them back here
        if self.has_permission(request):
            return redirect("admin:index")
        if not two_factor_enabled(user):
            return redirect("portal:security")  # which tells staff why they are there
        # Signed in before enrolling, or without the code: the code step, then back here.
        return redirect_to_login(next_url, reverse("login_code"))
