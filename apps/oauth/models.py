"""The toolkit's models, swapped in (OAUTH2_PROVIDER_*_MODEL): an application belongs to one organisation.

Access and refresh tokens are stored as the SHA-256 `token_checksum` only (the `token` column stays
empty: COMPLIANT_BCP_RFC9700_TOKEN_STORAGE); the plaintext goes to the client once.
"""

from ipaddress import ip_address
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from oauth2_provider.models import (
    AbstractAccessToken,
    AbstractApplication,
    AbstractGrant,
    AbstractIDToken,
    AbstractRefreshToken,
)

LOOPBACK_HOSTS = frozenset({"localhost"})


def redirect_uri_problem(uri: str) -> str | None:
    """Why a redirect URI may not be registered, or None: https anywhere, http on loopback only."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return f"{uri!r} is not a valid URL."
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host:
        if host in LOOPBACK_HOSTS:
            return None
        try:
            if ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
        return f"{uri!r}: http is allowed for loopback addresses only (127.0.0.1, [::1], localhost); use https."
    return f"{uri!r}: redirect URIs use https (or http on a loopback address)."


class Application(AbstractApplication):
    """An OAuth client of one organisation: its tokens are billed and limited there. `user` is who
    registered it (the principal of its client-credentials tokens). Change it through apps.oauth.services."""

    organisation = models.ForeignKey("accounts.Organisation", on_delete=models.CASCADE, related_name="oauth_applications")

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"

    def is_usable(self, request) -> bool:
        """The toolkit asks before it issues a token and when one is presented: never for an inactive tenant."""
        return self.organisation.is_active

    def clean(self) -> None:
        errors = {}
        try:
            super().clean()
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        problems = [p for p in map(redirect_uri_problem, self.redirect_uris.split()) if p]
        if problems:
            errors.setdefault("redirect_uris", []).extend(ValidationError(p) for p in problems)
        if self.authorization_grant_type not in (self.GRANT_AUTHORIZATION_CODE, self.GRANT_CLIENT_CREDENTIALS):
            errors.setdefault("authorization_grant_type", []).append(
                ValidationError("Only the authorization code (with PKCE) and client credentials grants are offered."))
        if self.authorization_grant_type == self.GRANT_CLIENT_CREDENTIALS and self.client_type != self.CLIENT_CONFIDENTIAL:
            errors.setdefault("client_type", []).append(
                ValidationError("Client credentials are for confidential (server) applications."))
        if errors:
            raise ValidationError(errors)


class ExternalIdentity(models.Model):
    """A person of an external identity provider (XROUTER_JWT_ISSUERS), as the user made on their first call."""

    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identity")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="one_user_per_external_subject")]

    def __str__(self):
        return f"{self.subject} at {self.issuer}"


class Grant(AbstractGrant):
    class Meta(AbstractGrant.Meta):
        swappable = "OAUTH2_PROVIDER_GRANT_MODEL"


class AccessToken(AbstractAccessToken):
    class Meta(AbstractAccessToken.Meta):
        swappable = "OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL"


class RefreshToken(AbstractRefreshToken):
    class Meta(AbstractRefreshToken.Meta):
        swappable = "OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL"


class IDToken(AbstractIDToken):
    class Meta(AbstractIDToken.Meta):
        swappable = "OAUTH2_PROVIDER_ID_TOKEN_MODEL"
