"""DRF authentication with OAuth access tokens (`Authorization: Bearer xro-...`) on the management API."""

from django.db import Error as DatabaseFailure
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header

from apps.accounts.models import User
from apps.keys.authentication import KeyStoreUnavailable, refuse_outside_networks

from .selectors import oauth_token_info_for


class OAuthTokenAuthentication(OAuth2Authentication):
    """request.user is the token's user, request.auth its KeyInfo (kind "oauth": scopes checked by
    apps.keys.permissions.KeyScope). A toolkit authenticator, so it counts as a person's sign-in
    (apps.accounts.permissions.PERSON_AUTHENTICATORS); it claims `xro-` tokens only and leaves others
    to the next authenticator."""

    def authenticate(self, request):
        scheme, _, token = get_authorization_header(request).decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith("xro-"):
            return None
        try:
            info = oauth_token_info_for(token)
            user = User.objects.filter(id=info.user_id, is_active=True).first() if info is not None else None
        except DatabaseFailure:
            raise KeyStoreUnavailable() from None
        if info is None or user is None:
            raise exceptions.AuthenticationFailed("Incorrect, revoked or expired access token.")
        refuse_outside_networks(request, info)
        return user, info

    def authenticate_header(self, request):
        return "Bearer"
