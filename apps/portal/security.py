"""The security page: two-factor login with an authenticator app (TOTP), and its recovery codes.

Enrolment shows a QR code (inline SVG, drawn here: no image leaves the server) and the secret while the
device is unconfirmed; a code from the app confirms it, and the recovery codes are shown then, once.
Turning it off takes a code too. Pages with a secret or codes are never cached.
"""

import base64

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django_otp import login as otp_login

from apps.accounts.selectors import totp_pending_device, two_factor_enabled
from apps.accounts.services import (
    totp_enrolment_confirm,
    totp_enrolment_start,
    two_factor_disable,
    two_factor_verify,
)

from .forms import CodeForm


def qr_svg(text: str) -> str:
    import qrcode
    import qrcode.image.svg

    return qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8).to_string(encoding="unicode")


@login_required
def security(request):
    user = request.user
    action = request.POST.get("action") if request.method == "POST" else None
    form = CodeForm(request.POST if action in {"confirm", "disable"} else None)
    recovery_codes = None
    if action == "start" and not two_factor_enabled(user):
        totp_enrolment_start(user)
    elif action == "confirm" and form.is_valid() and (device := totp_pending_device(user)) is not None:
        recovery_codes = totp_enrolment_confirm(device, form.cleaned_data["code"])
        if recovery_codes is None:
            form.add_error("code", _("This code is not right. Check the time on your phone and try the current one."))
        else:
            otp_login(request, device)  # this session has just shown a code
            form = CodeForm()
    elif action == "disable" and form.is_valid() and two_factor_enabled(user):
        if two_factor_verify(user, form.cleaned_data["code"]) is None:
            form.add_error("code", _("This code is not right."))
        else:
            two_factor_disable(user)
            messages.success(request, _("Two-factor login is off."))
            return redirect("portal:security")
    enabled = two_factor_enabled(user)
    pending = None if enabled else totp_pending_device(user)
    response = render(request, "portal/security.html", {
        "form": form, "enabled": enabled, "pending": pending, "recovery_codes": recovery_codes,
        "secret": base64.b32encode(pending.bin_key).decode() if pending else None,
        "qr": mark_safe(qr_svg(pending.config_url)) if pending else None,  # our own drawing of our own URL  # nosec B308 B703 # SVG we draw ourselves
        "staff_required": user.is_staff and settings.XROUTER["STAFF_TOTP"]})
    response["Cache-Control"] = "no-store"
    return response
