"""The developer portal: sign-up and the pages of a signed-in person (signing in: login.py).

What a person sees follows their memberships: owners and admins every key of their organisation,
developers their own, billing viewers none; usage of every organisation they belong to. A key
outside that set is a 404, never a 403, so its existence does not leak.
"""

import csv
import datetime
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
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
from apps.billing import selectors as billing
from apps.keys.models import ApiKey
from apps.keys.selectors import keys_visible_to, playground_keys
from apps.keys.services import key_create, key_revoke, key_rotate
from apps.providers.models import ProviderModel
from apps.usage.selectors import request_lookup, usage_of, usage_since

from .charts import bar_chart
from .forms import KeyCreateForm, KeyRotateForm, SignupForm

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


# --- What a person may see ---

def _memberships(user) -> list[Membership]:
    return list(Membership.objects.filter(user=user).select_related("organisation").order_by("organisation__name"))


# --- Pages ---

def _organisation_ids(memberships) -> list[int]:
    return [m.organisation_id for m in memberships]


def _day(day) -> str:
    return day.strftime("%d.%m")


def _daily_charts(series) -> list:
    return [(title, bar_chart(series, field, "day", title, label_format=_day))
            for field, title in (("requests", _("Requests per day")), ("tokens", _("Tokens per day")),
                                 ("spend", _("Spend per day, ₽")))]


def _as_usage(row) -> dict:
    return {**row, "tokens": row["prompt_tokens"] + row["completion_tokens"], "spend": row["cost"]}


def _spend(organisation_ids, days: int) -> dict:
    """The last `days` days from the daily roll-ups (apps.billing; today from the raw rows): a series by
    day, sums by model, key and provider, and the totals."""
    start = timezone.localdate() - datetime.timedelta(days=days - 1)
    end = timezone.localdate() + datetime.timedelta(days=1)
    series = [_as_usage(row) for row in billing.spend_series(organisation_ids, days)]
    grouped = {}
    for row in billing.sums(start, end, by=("model", "api_key_id", "provider"), organisation_ids=organisation_ids):
        for field in ("model", "api_key_id", "provider"):
            into = grouped.setdefault(field, {}).setdefault(row[field], dict.fromkeys(billing.MEASURES, 0))
            for name in billing.MEASURES:
                into[name] += row[name]

    def ranked(field, limit=20):
        rows = [_as_usage({field: value, **sums}) for value, sums in grouped.get(field, {}).items()]
        return sorted(rows, key=lambda r: (-r["spend"], -r["requests"], str(r[field])))[:limit]

    totals = {name: sum(row[name] for row in series) for name in ("requests", "tokens", "spend")}
    return {"series": series, "by_model": ranked("model"), "by_key": ranked("api_key_id"),
            "by_provider": ranked("provider"), "totals": totals}


@login_required
def dashboard(request):
    memberships = _memberships(request.user)
    spend = _spend(_organisation_ids(memberships), DASHBOARD_DAYS)
    return render(request, "portal/dashboard.html", {
        "memberships": [(m.organisation.name, ROLE_LABELS.get(m.role, m.role)) for m in memberships],
        "totals": spend["totals"], "charts": _daily_charts(spend["series"]),
        "by_model": spend["by_model"], "days": DASHBOARD_DAYS})


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


CAPABILITY_LABELS = {"streaming": gettext_lazy("streaming"), "tools": gettext_lazy("tools"),
                     "images": gettext_lazy("images"), "dimensions": gettext_lazy("dimensions")}
KIND_LABELS = {ProviderModel.CHAT: gettext_lazy("chat"), ProviderModel.EMBEDDING: gettext_lazy("embeddings")}


@login_required
def models(request):
    catalog = (ProviderModel.objects.filter(enabled=True, provider__enabled=True).select_related("provider")
               .order_by("provider__name", "name"))
    return render(request, "portal/models.html", {"models": [
        (m, KIND_LABELS.get(m.kind, m.kind), [CAPABILITY_LABELS[c] for c in m.capabilities()]) for m in catalog]})


@login_required
def playground(request):
    """Chat over the WebSocket /v1/realtime/chat, signed in by this session (apps/gateway/ws_session.py),
    billing a key of the person's own or their hour-long `playground` key."""
    catalog = (ProviderModel.objects.filter(enabled=True, provider__enabled=True, kind=ProviderModel.CHAT)
               .select_related("provider").order_by("provider__name", "name"))
    strings = {"connecting": _("Connecting…"), "streaming": _("Streaming…"), "done": _("Done."),
               "cancelled": _("Cancelled."), "closed": _("The connection closed: %(reason)s"),
               "error": _("Error: %(message)s"), "tokens": _("Tokens: %(prompt)s in, %(completion)s out.")}
    return render(request, "portal/playground.html", {
        "keys": playground_keys(request.user), "models": [f"{m.provider.name}/{m.name}" for m in catalog],
        "strings": strings})


@login_required
def usage(request):
    """Sums by day, model and key over 30 days, the lookup of one request by its id, the latest requests."""
    memberships = _memberships(request.user)
    organisation_ids = _organisation_ids(memberships)
    spend = _spend(organisation_ids, DASHBOARD_DAYS)
    keys = {k["id"]: k for k in ApiKey.objects.filter(id__in=[row["api_key_id"] for row in spend["by_key"]],
                                                     organisation_id__in=organisation_ids).values("id", "prefix", "name")}
    by_key = [{**row, "key_prefix": keys.get(row["api_key_id"], {}).get("prefix", ""),
               "name": keys.get(row["api_key_id"], {}).get("name", "")} for row in spend["by_key"]]
    by_model = spend["by_model"]
    month_spend = billing.month_to_date("organisation_id", organisation_ids)
    budgets = [{"name": m.organisation.name, "spend": month_spend.get(m.organisation_id, 0),
                "budget": m.organisation.monthly_budget} for m in memberships]
    lookup_id = request.GET.get("request_id", "").strip()
    found = request_lookup(lookup_id, organisation_ids) if lookup_id else None
    return render(request, "portal/usage.html", {
        "days": DASHBOARD_DAYS, "charts": _daily_charts(spend["series"]), "budgets": budgets,
        "by_model": by_model, "by_provider": spend["by_provider"],
        "provider_chart": bar_chart(spend["by_provider"], "spend", "provider", _("Spend by provider, ₽"),
                                    label_format=lambda p: p or "—"), "model_chart": bar_chart(by_model, "spend", "model", _("Spend by model, ₽"), label_format=lambda m: m or "—"),
        "by_key": by_key,
        "key_chart": bar_chart(by_key, "spend", "key_prefix", _("Spend by key, ₽"),
                               label_format=lambda p: f"xr-{p}-…" if p else "—"),
        "lookup_id": lookup_id[:200], "found": found,
        "rows": usage_of(organisation_ids).order_by("-created_at")[:USAGE_PAGE_ROWS], "limit": USAGE_PAGE_ROWS})


class _Echo:
    def write(self, value):
        return value


CSV_COLUMNS = ("created_at", "request_id", "attempt", "organisation_id", "key_prefix", "endpoint", "provider", "model",
               "prompt_tokens", "completion_tokens", "cached_tokens", "cost", "status", "http_status", "latency_ms")


def _cell(value):
    text = value.isoformat() if isinstance(value, datetime.datetime) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text  # no formulas in a spreadsheet


@login_required
def usage_csv(request):
    """The last 30 days of the person's organisations, newest first (at most CSV_MAX_ROWS rows)."""
    rows = (usage_since(_organisation_ids(_memberships(request.user)), DASHBOARD_DAYS).order_by("-created_at")
            .values_list(*CSV_COLUMNS)[:CSV_MAX_ROWS])
    writer = csv.writer(_Echo())
    lines = (writer.writerow([_cell(v) for v in row]) for row in rows.iterator(chunk_size=2000))
    response = StreamingHttpResponse((line for part in ([writer.writerow(CSV_COLUMNS)], lines) for line in part),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="xrouter-usage.csv"'
    return response
