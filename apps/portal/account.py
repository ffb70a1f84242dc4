"""The user's own data (152-FZ): download it as JSON, or delete the account (with a confirmation)."""

import datetime

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.privacy.services import account_delete, account_export


@login_required
def account(request):
    return render(request, "portal/account.html", {"error": None})


@login_required
def account_export_view(request):
    response = JsonResponse(account_export(request.user), encoder=DjangoJSONEncoder, json_dumps_params={"indent": 2,
                                                                                                           "ensure_ascii": False})
    stamp = datetime.date.today().isoformat()
    response["Content-Disposition"] = f'attachment; filename="xrouter-my-data-{stamp}.json"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def account_delete_view(request):
    user = request.user
    # Both: the username shows the person knows what goes, the password that it is them (not a stolen session).
    if request.POST.get("confirm") != user.username or not user.check_password(request.POST.get("password", "")):
        return render(request, "portal/account.html",
                      {"error": _("Type your username and your password to delete the account.")}, status=400)
    try:
        account_delete(user)
    except PermissionDenied as exc:
        return render(request, "portal/account.html", {"error": str(exc)}, status=409)
    logout(request)
    messages.success(request, _("Your account and your API keys are deleted."))
    return redirect("login")
