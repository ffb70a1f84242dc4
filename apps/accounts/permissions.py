"""DRF permissions of the organisation endpoints."""

from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission

# The ways a person (not an application's API key) signs in to the management API: a session, or an
# OAuth access token (apps.oauth.authentication subclasses the toolkit's authenticator).
PERSON_AUTHENTICATORS = (SessionAuthentication, OAuth2Authentication)


class SignedInPerson(BasePermission):
    """Organisations, memberships and OAuth applications take a session or an OAuth token, never an API key:
    keys are for /v1, keys and usage, and a leaked key must not be able to add members or widen the policy.
    An OAuth token only reads them (no scope a person consents to covers running an organisation), and only
    in its application's organisation (request.auth.organisation_id: the views narrow to it)."""

    message = ("Organisations and memberships take a signed-in session or an OAuth token, not an API key "
               "(API keys are for /v1, /api/v1/keys and /api/v1/usage).")

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.successful_authenticator, PERSON_AUTHENTICATORS):
            return False
        if request.auth is not None and request.method not in SAFE_METHODS:  # an OAuth token
            self.message = ("An OAuth access token only reads organisations, members and OAuth applications; "
                            "changing them takes a signed-in session.")
            return False
        return True
