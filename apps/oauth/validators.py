"""The toolkit's request validator and oauthlib server, as XRouter runs them.

PKCE: S256 only. PKCE_REQUIRED already refuses a missing challenge and COMPLIANT_BCP_RFC9700_PKCE_METHOD
a `plain` one, but only once the user has consented; `require_s256` refuses both when the request
arrives, before any page is shown or code saved.
"""

from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.openid import Server


def require_s256(request) -> dict:
    """oauthlib pre-authorization validator: a code request carries an S256 challenge, nothing else."""
    if not request.code_challenge:
        raise errors.MissingCodeChallengeError(request=request)
    if request.code_challenge_method != "S256":
        raise errors.UnsupportedCodeChallengeMethodError(
            description="Only the S256 code_challenge_method is accepted.", request=request)
    return {}


class XRouterServer(Server):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The OpenID grant hands its checks to the plain OAuth one (proxy_target): cover both paths.
        for grant in (self.auth_grant, self.openid_connect_auth.proxy_target):
            grant.custom_validators.pre_auth.append(require_s256)


class XRouterOAuth2Validator(OAuth2Validator):
    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        """A deactivated person's refresh tokens mint nothing (their access tokens are refused by the cache)."""
        valid = super().validate_refresh_token(refresh_token, client, request, *args, **kwargs)
        return valid and request.user is not None and request.user.is_active

    def get_additional_claims(self, request):
        user = request.user
        return {"preferred_username": user.get_username(), "email": user.email} if user else {}
