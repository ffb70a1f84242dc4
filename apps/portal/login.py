"""Signing in: the password step with its lock-out, the code step for people with two-factor login, and
the one place both the password and the OpenID Connect logins finish (begin_login).

Lock-out: XROUTER_LOGIN_MAX_FAILURES failures for one username from one address (an IPv6 one: its /64) within
XROUTER_LOGIN_LOCKOUT_SECONDS refuse both steps for that long. Wrong codes count as failures, and a right
password does not reset the count while a code is still due, so the password cannot buy fresh code guesses.
"""

import hashlib
import ipaddress
import time
import unicodedata

from django.conf import settings
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django_otp import login as otp_login

from apps.accounts.models import User
from apps.accounts.selectors import two_factor_enabled
from apps.accounts.services import two_factor_verify

from .forms import CodeForm, LoginForm

PENDING = "portal:login-pending"  # in the session between the password (or provider) and the code
PENDING_SECONDS = 300


def lockout_keys(request, username: str) -> tuple[str, str]:
    # The name as Django's login form reads it (stripped, NFKC), so another spelling of it ("ａｌｉｃｅ")
    # is the same person and buys no fresh guesses; case folded on top.
    name = unicodedata.normalize("NFKC", username.strip()).strip().lower()
    # An IPv6 client is its /64: anyone holds one, and its addresses must not each get fresh guesses.
    address = request.client_address
    where = ipaddress.ip_network(f"{address}/64", strict=False) if address is not None and address.version == 6 else address
    # Hashed: the cache key carries neither the username nor the address in the clear.
    who = hashlib.sha256(f"{name}\0{where}".encode()).hexdigest()
    return f"portal:login-failures:{who}", f"portal:login-locked:{who}"


def is_locked(request, username: str) -> bool:
    return bool(cache.get(lockout_keys(request, username)[1]))


def count_failure(request, username: str) -> None:
    failures_key, locked_key = lockout_keys(request, username)
    window = settings.XROUTER["LOGIN_LOCKOUT_SECONDS"]
    cache.add(failures_key, 0, timeout=window)  # the window starts at the first failure
    try:
        failures = cache.incr(failures_key)
    except ValueError:  # expired between add and incr
        cache.set(failures_key, failures := 1, timeout=window)
    if failures >= settings.XROUTER["LOGIN_MAX_FAILURES"]:
        cache.set(locked_key, 1, timeout=window)
        cache.delete(failures_key)


def locked_message() -> str:
    minutes = max(1, round(settings.XROUTER["LOGIN_LOCKOUT_SECONDS"] / 60))
    return LoginForm.error_messages["locked"] % {"minutes": minutes}


def safe_next(request, candidate: str | None) -> str:
    if candidate and url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()},
                                                     require_https=request.is_secure()):
        return candidate
    return reverse(settings.LOGIN_REDIRECT_URL)


def oidc_login_name() -> str | None:
    """The OpenID Connect provider's name for the login button (oidc.py), or None when it is not configured."""
    config = settings.XROUTER["OIDC_LOGIN"]
    return config["NAME"] if config["DISCOVERY_URL"] and config["CLIENT_ID"] and config["CLIENT_SECRET"] else None


def begin_login(request, user: User, backend: str, next_url: str):
    """The person proved who they are (password or identity provider): sign them in, or, when they have
    two-factor login, keep them pending in the session and ask for a code first."""
    if two_factor_enabled(user):
        request.session.cycle_key()
        request.session[PENDING] = {"user": user.pk, "backend": backend, "at": time.time()}
        return redirect(f"{reverse('login_code')}?{urlencode({'next': next_url})}")
    cache.delete(lockout_keys(request, user.get_username())[0])
    auth_login(request, user, backend=backend)
    return redirect(next_url)


class LoginView(auth_views.LoginView):
    """Django's login with the lock-out; people with two-factor login go on to the code step."""

    form_class = LoginForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")
        if is_locked(request, username):  # the password is not even checked meanwhile
            form = self.get_form_class()(request, data=None)
            return self.render_to_response(self.get_context_data(form=form, locked_error=locked_message()), status=429)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(**kwargs) | {"oidc_name": oidc_login_name()}

    def form_invalid(self, form):
        count_failure(self.request, self.request.POST.get("username", ""))
        return super().form_invalid(form)

    def form_valid(self, form):
        user = form.get_user()
        return begin_login(self.request, user, user.backend, self.get_success_url())


def _code_step_user(request) -> tuple[User | None, dict | None]:
    """Whom the code step is for: the person pending after the password, or a signed-in person whose session
    has not passed a code yet (staff on their way to the admin)."""
    pending = request.session.get(PENDING)
    if pending and time.time() - pending["at"] < PENDING_SECONDS:
        return User.objects.filter(pk=pending["user"], is_active=True).first(), pending
    if request.user.is_authenticated and not request.user.is_verified() and two_factor_enabled(request.user):
        return request.user, None
    return None, None


@never_cache
@csrf_protect
def login_code(request):
    user, pending = _code_step_user(request)
    if user is None:
        return redirect("login")
    next_url = safe_next(request, request.POST.get("next") or request.GET.get("next"))
    form = CodeForm(request.POST or None)
    context = {"form": form, "next": next_url}
    if request.method == "POST":
        if is_locked(request, user.get_username()):
            return render(request, "registration/login_code.html", context | {"locked_error": locked_message()},
                          status=429)
        if form.is_valid():
            device = two_factor_verify(user, form.cleaned_data["code"])
            if device is not None:
                cache.delete(lockout_keys(request, user.get_username())[0])
                if pending is not None:
                    del request.session[PENDING]
                    auth_login(request, user, backend=pending["backend"])
                otp_login(request, device)
                return redirect(next_url)
            count_failure(request, user.get_username())
            form.add_error("code", _("This code is not right. Try the current one from your app, or a recovery code."))
    return render(request, "registration/login_code.html", context)
