"""DRF authentication with the same `Authorization: Bearer xr-...` keys as /v1."""

from django.db import Error as DatabaseFailure
from rest_framework import authentication, exceptions

from apps.accounts.models import User

from .selectors import key_info_for


class KeyStoreUnavailable(exceptions.APIException):
    status_code = 503
    default_detail = "API keys cannot be checked right now (the key store is unreachable); retry shortly."
    default_code = "service_unavailable"


def refuse_outside_networks(request, info) -> None:
    """403 when the client address is outside the credential's or its organisation's IP allow-list (the
    management API's side of apps.gateway.admission)."""
    refusal = info.address_refusal(request.client_address)  # apps.common.middleware: the resolver /v1 uses too
    if refusal:
        raise exceptions.PermissionDenied(refusal)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """request.user is the key's user, request.auth its KeyInfo (scopes checked by permissions.KeyScope)."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            info = key_info_for(token.strip())
            user = User.objects.filter(id=info.user_id, is_active=True).first() if info is not None else None
        except DatabaseFailure:
            raise KeyStoreUnavailable() from None
        if info is None or user is None:
            raise exceptions.AuthenticationFailed("Incorrect, revoked or expired API key.")
        refuse_outside_networks(request, info)
        return user, info

    def authenticate_header(self, request):
        return "Bearer"
