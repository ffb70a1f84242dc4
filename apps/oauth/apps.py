from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "apps.oauth"
    label = "oauth"
    verbose_name = "OAuth 2.0"

    def ready(self):
        from . import services  # noqa: F401 (the receiver that tells the gateways)
