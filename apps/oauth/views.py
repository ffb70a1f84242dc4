"""The toolkit's introspection endpoint, kept within a tenant."""

import base64
import binascii
from hashlib import sha256
from urllib.parse import unquote_plus

from django.http import JsonResponse
from oauth2_provider import views

from .models import AccessToken, Application


def _client_id(request) -> str | None:
    """The client id the request authenticated with (HTTP Basic, else the form's client_id)."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            return unquote_plus(base64.b64decode(credentials).decode().partition(":")[0])
        except (binascii.Error, UnicodeDecodeError):
            return None
    return request.POST.get("client_id")


class IntrospectTokenView(views.IntrospectTokenView):
    """RFC 7662 for authenticated clients (the toolkit checks the credentials before `post` runs), about
    tokens of the client's own organisation only: another tenant's token reads as inactive. POST only, so a
    token never travels in a URL."""

    http_method_names = ["post", "options"]

    def post(self, request, *args, **kwargs):
        token, client_id = request.POST.get("token"), _client_id(request)
        if token is not None:
            organisation_id = Application.objects.filter(client_id=client_id).values_list("organisation_id", flat=True).first()
            if organisation_id is None or not AccessToken.objects.filter(
                    token_checksum=sha256(token.encode()).hexdigest(), application__organisation_id=organisation_id).exists():
                return JsonResponse({"active": False})
        return super().post(request, *args, **kwargs)
