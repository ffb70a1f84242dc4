"""The OpenAPI description of API keys on the management API (drf-spectacular finds it by class)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.keys.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "xr-<prefix>-<secret>",
                "description": "An XRouter API key (scopes usage:read, keys:manage)."}
