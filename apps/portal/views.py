"""The developer portal: sign-up, login with lock-out, and the pages of a signed-in person.

What a person sees follows their memberships: owners and admins every key of their organisation,
developers their own, billing viewers none; usage of every organisation they belong to. A key
outside that set is a 404, never a 403, so its existence does not leak.
"""

import csv
import datetime
import hashlib
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, F, Sum
from django.db.models.functions import TruncDate
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from apps.accounts.models import Membership, User
from apps.accounts.services import organisation_create_for, user_set_active
from apps.keys.selectors import keys_visible_to
from apps.keys.services import key_create, key_revoke, key_rotate
from apps.providers.models import ProviderModel
from apps.usage.models import UsageRecord

from .forms import KeyCreateForm, KeyRotateForm, LoginForm, SignupForm

log = logging.getLogger(__name__)


class _SignupTokens(PasswordResetTokenGenerator):
    key_salt = "apps.portal.signup"  # its own salt: a confirmation link is no password-reset link, nor the reverse


signup_tokens = _SignupTokens()
Role = Membership.Role
DASHBOARD_DAYS = 30
USAGE_PAGE_ROWS = 200
CSV_MAX_ROWS = 100_000
ROLE_LABELS = {Role.OWNER: gettext_lazy("owner"), Role.ADMIN: gettext_lazy("admin"),
               Role.DEVELOPER: gettext_lazy("developer"), Role.BILLING_VIEWER: gettext_lazy("billing viewer")}


# --- Accounts ---

def signup(request):
    policy = settings.XROUTER["SIGNUP"]
    if policy == "invite":
        return render(request, "portal/signup_invite_only.html")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            # The mail is sent inside the transaction: if it cannot be, nobody is left holding the name.
            with transaction.atomic():
                user = form.save(commit=False)
                user.is_active = False  # until the address is confirmed
                user.save()
                organisation_create_for(user, form.cleaned_data["organisation"] or user.username)
                _send_confirmation(request, user)
        except OSError:  # SMTP down or refusing (smtplib's errors are OSErrors); bounded by EMAIL_TIMEOUT
            log.warning("sign-up: the confirmation e-mail could not be sent", exc_info=True)
            form.add_error(None, _("We could not send the confirmation e-mail. Try again later."))
        else:
            return render(request, "portal/signup_sent.html", {"email": user.email})
    return render(request, "portal/signup.html", {"form": form, "policy": policy,
                                                  "domains": settings.XROUTER["SIGNUP_DOMAINS"]})


def _send_confirmation(request, user: User) -> None:
    path = reverse("portal:signup_confirm", kwargs={"uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                                                    "token": signup_tokens.make_token(user)})
    context = {"user": user, "url": request.build_absolute_uri(path)}
    send_mail(_("Confirm your XRouter account"), render_to_string("portal/email/confirm.txt", context),
              None, [user.email])


@never_cache
def signup_confirm(request, uidb64, token):
    try:
        user = User.objects.get(pk=int(urlsafe_base64_decode(uidb64).decode()))
    except (ValueError, TypeError, OverflowError, User.DoesNotExist):
        user = None
    if user is None or not signup_tokens.check_token(user, token):
        return render(request, "portal/signup_confirm_invalid.html", status=400)
    if not user.is_active:
        user_set_active(user, True)
    messages.success(request, _("Your e-mail address is confirmed. Sign in."))
    return redirect("login")


def _lockout_keys(request, username: str) -> tuple[str, str]:
    # Hashed: the cache key carries neither the username nor the address in the clear.
    who = hashlib.sha256(f"{username.strip().lower()}\0{request.client_address}".encode()).hexdigest()
    return f"portal:login-failures:{who}", f"portal:login-locked:{who}"


class LoginView(auth_views.LoginView):
    """Django's login, refusing a username from an address after XROUTER_LOGIN_MAX_FAILURES failures
    within XROUTER_LOGIN_LOCKOUT_SECONDS, for that long; the password is not even checked meanwhile."""

    form_class = LoginForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        failures_key, locked_key = _lockout_keys(request, request.POST.get("username", ""))
        if cache.get(locked_key):
            form = self.get_form_class()(request, data=None)
            seconds = settings.XROUTER["LOGIN_LOCKOUT_SECONDS"]
            error = form.error_messages["locked"] % {"minutes": max(1, round(seconds / 60))}
            return self.render_to_response(self.get_context_data(form=form, locked_error=error), status=429)
        self._lockout = failures_key, locked_key
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        failures_key, locked_key = self._lockout
        window = settings.XROUTER["LOGIN_LOCKOUT_SECONDS"]
        cache.add(failures_key, 0, timeout=window)  # the window starts at the first failure
        try:
            failures = cache.incr(failures_key)
        except ValueError:  # expired between add and incr
            cache.set(failures_key, failures := 1, timeout=window)
        if failures >= settings.XROUTER["LOGIN_MAX_FAILURES"]:
            cache.set(locked_key, 1, timeout=window)
            cache.delete(failures_key)
        return super().form_invalid(form)

    def form_valid(self, form):
        cache.delete(self._lockout[0])
        return super().form_valid(form)


# --- What a person may see ---

def _memberships(user) -> list[Membership]:
    return list(Membership.objects.filter(user=user).select_related("organisation").order_by("organisation__name"))


def _usage(memberships):
    return UsageRecord.objects.filter(organisation_id__in=[m.organisation_id for m in memberships])


# --- Pages ---

@login_required
def dashboard(request):
    memberships = _memberships(request.user)
    since = timezone.now() - datetime.timedelta(days=DASHBOARD_DAYS)
    recent = _usage(memberships).filter(created_at__gte=since)
    sums = {"requests": Count("id"), "tokens": Sum(F("prompt_tokens") + F("completion_tokens")), "spend": Sum("cost")}
    totals = recent.aggregate(**sums)
    by_day = recent.annotate(day=TruncDate("created_at")).values("day").annotate(**sums).order_by("-day")
    by_model = recent.values("model").annotate(**sums).order_by("-spend", "model")[:20]
    return render(request, "portal/dashboard.html", {
        "memberships": [(m.organisation.name, ROLE_LABELS.get(m.role, m.role)) for m in memberships], "totals": totals, "by_day": by_day, "by_model": by_model, "days": DASHBOARD_DAYS})


def _issuing(memberships) -> list:
    return [m.organisation for m in memberships if m.role != Role.BILLING_VIEWER and m.organisation.is_active]


@login_required
def keys(request):
    issuing = _issuing(_memberships(request.user))
    form = KeyCreateForm(request.POST or None, organisations=issuing,
                         initial={"organisation": request.user.organisation_id})
    created = plaintext = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        organisation = next(o for o in issuing if o.pk == data["organisation"])
        try:
            created, plaintext = key_create(
                user=request.user, organisation=organisation, issued_by=request.user, name=data["name"],
                scopes=data["scopes"], allowed_models=data["allowed_models"], allowed_ips=data["allowed_ips"],
                expires_at=data["expires_on"])
        except (PermissionDenied, ValidationError) as exc:
            form.add_error(None, " ".join(getattr(exc, "messages", None) or [str(exc)]))
        else:
            form = KeyCreateForm(organisations=issuing, initial={"organisation": organisation.pk})
    return _keys_page(request, form, issuing, created, plaintext)


def _keys_page(request, form, issuing, created=None, plaintext=None, replaced=None):
    response = render(request, "portal/keys.html", {
        "form": form, "can_issue": bool(issuing), "keys": keys_visible_to(request.user), "created": created,
        "plaintext": plaintext, "replaced": replaced, "rotate_form": KeyRotateForm(auto_id=False)})
    # The plaintext is in this body only: no cache, no redirect, no cookie, no session message.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def key_revoke_view(request, pk):
    key = get_object_or_404(keys_visible_to(request.user), pk=pk)
    key_revoke(key)
    messages.success(request, _("Key %(name)s (xr-%(prefix)s-…) is revoked.") % {"name": key.name, "prefix": key.prefix})
    return redirect("portal:keys")


@login_required
@require_POST
def key_rotate_view(request, pk):
    """One's own key only (the new secret acts as its user); the new key is shown once, on this answer."""
    key = get_object_or_404(keys_visible_to(request.user).filter(user=request.user), pk=pk)
    rotate = KeyRotateForm(request.POST)
    if not rotate.is_valid():
        messages.error(request, " ".join(e for errors in rotate.errors.values() for e in errors))
        return redirect("portal:keys")
    try:
        created, plaintext = key_rotate(key, grace=rotate.cleaned_data["grace"], by=request.user)
    except (PermissionDenied, ValidationError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", None) or [str(exc)]))
        return redirect("portal:keys")
    issuing = _issuing(_memberships(request.user))
    form = KeyCreateForm(organisations=issuing, initial={"organisation": request.user.organisation_id})
    return _keys_page(request, form, issuing, created, plaintext, replaced=key)


@login_required
def models(request):
    catalog = (ProviderModel.objects.filter(enabled=True, provider__enabled=True).select_related("provider")
               .order_by("provider__name", "name"))
    return render(request, "portal/models.html", {"models": catalog})


@login_required
def usage(request):
    rows = _usage(_memberships(request.user)).order_by("-created_at")[:USAGE_PAGE_ROWS]
    return render(request, "portal/usage.html", {"rows": rows, "limit": USAGE_PAGE_ROWS})


class _Echo:
    def write(self, value):
        return value


CSV_COLUMNS = ("created_at", "request_id", "organisation_id", "key_prefix", "endpoint", "provider", "model",
               "prompt_tokens", "completion_tokens", "cached_tokens", "cost", "status", "http_status", "latency_ms")


def _cell(value):
    text = value.isoformat() if isinstance(value, datetime.datetime) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text  # no formulas in a spreadsheet


@login_required
def usage_csv(request):
    """The last 30 days of the person's organisations, newest first (at most CSV_MAX_ROWS rows)."""
    since = timezone.now() - datetime.timedelta(days=DASHBOARD_DAYS)
    rows = (_usage(_memberships(request.user)).filter(created_at__gte=since).order_by("-created_at")
            .values_list(*CSV_COLUMNS)[:CSV_MAX_ROWS])
    writer = csv.writer(_Echo())
    lines = (writer.writerow([_cell(v) for v in row]) for row in rows.iterator(chunk_size=2000))
    response = StreamingHttpResponse((line for part in ([writer.writerow(CSV_COLUMNS)], lines) for line in part),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="xrouter-usage.csv"'
    return response
