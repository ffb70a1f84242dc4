"""The toolkit's introspection endpoint, kept within a tenant."""

from hashlib import sha256

from django.http import JsonResponse
from oauth2_provider import views
from oauthlib.common import Request as OauthlibRequest

from .models import AccessToken


class IntrospectTokenView(views.IntrospectTokenView):
    """RFC 7662 for authenticated clients (the toolkit checks the credentials before `post` runs), about
    tokens of the client's own organisation only: another tenant's token reads as inactive. POST only, so a
    token never travels in a URL."""

    http_method_names = ["post", "options"]

    def authenticate_client(self, request):
        """The toolkit's check, keeping which client passed it: HTTP Basic, else the body's credentials (a
        client id named in a failing header is not the one that authenticated)."""
        core = self.get_oauthlib_core()
        oauthlib_request = OauthlibRequest(*core._extract_params(request))
        valid = core.server.request_validator.authenticate_client(oauthlib_request)
        request.introspecting_client = oauthlib_request.client if valid else None
        return valid

    def post(self, request, *args, **kwargs):
        token, client = request.POST.get("token"), getattr(request, "introspecting_client", None)
        if token is not None:
            if client is None or not AccessToken.objects.filter(
                    token_checksum=sha256(token.encode()).hexdigest(),
                    application__organisation_id=client.organisation_id).exists():
                return JsonResponse({"active": False})
        return super().post(request, *args, **kwargs)
