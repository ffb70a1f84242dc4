"""DRF authentication with the same `Authorization: Bearer xr-...` keys as /v1."""

from rest_framework import authentication, exceptions

from apps.accounts.models import User

from .selectors import key_info_for


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        info = key_info_for(token.strip())
        if info is None:
            raise exceptions.AuthenticationFailed("Incorrect, revoked or expired API key.")
        user = User.objects.filter(id=info.user_id, is_active=True).first()
        if user is None:
            raise exceptions.AuthenticationFailed("The key's user is inactive.")
        return user, info

    def authenticate_header(self, request):
        return "Bearer"
