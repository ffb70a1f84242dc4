"""The OpenAPI description of OAuth access tokens on the management API (drf-spectacular finds it by class)."""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class OAuthTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.oauth.authentication.OAuthTokenAuthentication"
    name = "oauth2"

    def get_security_definition(self, auto_schema):
        scopes = {name: str(text) for name, text in settings.OAUTH2_PROVIDER["SCOPES"].items()}
        return {"type": "oauth2", "flows": {
            "authorizationCode": {"authorizationUrl": "/o/authorize/", "tokenUrl": "/o/token/",
                                  "refreshUrl": "/o/token/", "scopes": scopes},
            "clientCredentials": {"tokenUrl": "/o/token/", "scopes": scopes},
        }}
