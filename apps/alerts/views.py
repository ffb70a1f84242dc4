"""POST /api/v1/alerts/alertmanager: Alertmanager's webhook receiver. Authenticated as Alertmanager's
http_config allows: a bearer token (XROUTER_ALERTMANAGER_TOKEN) or basic auth
(XROUTER_ALERTMANAGER_BASIC_AUTH="user:password"); nothing configured = refused."""

import base64
import hmac
import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .services import alertmanager_receive

MAX_BODY = 1024 * 1024


def _authorized(header: str) -> bool:
    xr = settings.XROUTER
    token, basic = xr["ALERTMANAGER_TOKEN"], xr["ALERTMANAGER_BASIC_AUTH"]
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    if basic:
        expected = "Basic " + base64.b64encode(basic.encode()).decode()
        return hmac.compare_digest(header.encode(), expected.encode())
    return False


@csrf_exempt
@require_POST
def alertmanager_webhook(request):
    if not _authorized(request.headers.get("Authorization", "")):
        response = JsonResponse({"error": "authentication required (bearer token or basic auth)"}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="alertmanager"'
        return response
    if len(request.body) > MAX_BODY:
        return JsonResponse({"error": f"notifications are at most {MAX_BODY} bytes"}, status=413)
    try:
        transitions = alertmanager_receive(json.loads(request.body))
    except (ValueError, ValidationError) as exc:
        message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else "the body is not JSON"
        return JsonResponse({"error": message}, status=400)
    return JsonResponse({"received": True, "transitions": len(transitions)})
