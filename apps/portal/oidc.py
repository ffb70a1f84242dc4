"""Login through an OpenID Connect provider (XROUTER_OIDC_LOGIN_*), with Authlib's Django client.

Authorization code flow with PKCE (S256), state and nonce kept in the session by Authlib, the ID token's
signature checked against the provider's JWKS. The person is the account with the ID token's address, which
the provider must mark verified; without one, a new account is made when the sign-up policy would let that
address sign up (open; domains: a listed domain; invite: an open invitation, which is then accepted). The
login then finishes like a password login: the code step follows for people with two-factor login.
"""

import functools
import logging

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from apps.accounts.models import User
from apps.accounts.selectors import open_invitations_to
from apps.accounts.services import invitation_accept, organisation_create_for, user_create_from_identity

from .forms import domain_allowed
from .login import begin_login, oidc_login_name, safe_next

log = logging.getLogger(__name__)
NEXT = "portal:oidc-next"
BACKEND = "django.contrib.auth.backends.ModelBackend"
HTTP_TIMEOUT = 10  # seconds, for each call to the provider (discovery, JWKS, token)


@functools.cache
def _client(discovery_url: str, client_id: str, client_secret: str):
    # One per configuration and process: Authlib keeps the discovery document and the JWKS it fetched.
    from authlib.integrations.django_client import OAuth

    return OAuth().register(
        name="oidc", server_metadata_url=discovery_url, client_id=client_id, client_secret=client_secret,
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256",
                       "default_timeout": HTTP_TIMEOUT})


def _configured_client():
    if oidc_login_name() is None:
        raise Http404
    config = settings.XROUTER["OIDC_LOGIN"]
    return _client(config["DISCOVERY_URL"], config["CLIENT_ID"], config["CLIENT_SECRET"])


@require_POST
def oidc_start(request):
    client = _configured_client()
    request.session[NEXT] = safe_next(request, request.POST.get("next"))
    import requests

    try:
        return client.authorize_redirect(request, request.build_absolute_uri(reverse("oidc_callback")))
    except (requests.RequestException, ValueError, RuntimeError):  # the provider is down, or its discovery unusable
        log.warning("OIDC login: the provider's discovery failed", exc_info=True)
        messages.error(request, _("The identity provider does not answer. Try again later."))
        return redirect("login")


@never_cache
def oidc_callback(request):
    client = _configured_client()
    import requests
    from authlib.integrations.base_client.errors import OAuthError
    from joserfc.errors import JoseError

    try:
        claims = client.authorize_access_token(request)["userinfo"]
    except (OAuthError, JoseError, KeyError, ValueError) as exc:  # refused, wrong state, bad token or signature
        log.warning("OIDC login refused: %s", type(exc).__name__)
        messages.error(request, _("The identity provider did not sign you in."))
        return redirect("login")
    except requests.RequestException:
        log.warning("OIDC login: the provider failed", exc_info=True)
        messages.error(request, _("The identity provider does not answer. Try again later."))
        return redirect("login")
    email = claims.get("email") or ""
    if not email or claims.get("email_verified") is not True:
        messages.error(request, _("The identity provider did not confirm an e-mail address for you."))
        return redirect("login")
    try:
        user = person_for_identity(email, claims.get("preferred_username") or email.split("@")[0])
    except (PermissionDenied, ValidationError):
        messages.error(request, _("No account has this address, and sign-up is closed to it."))
        return redirect("login")
    return begin_login(request, user, BACKEND, request.session.pop(NEXT, None) or safe_next(request, None))


def person_for_identity(email: str, username_hint: str) -> User:
    """The account of a verified address: found, or made when the sign-up policy lets the address in."""
    found = list(User.objects.filter(email__iexact=email)[:2])
    if len(found) == 2:  # two accounts share the address: which one is meant is not ours to guess
        raise PermissionDenied
    if found:
        if not found[0].is_active:
            raise PermissionDenied
        return found[0]
    invitations = list(open_invitations_to(email))
    if not invitations and (settings.XROUTER["SIGNUP"] == "invite" or not domain_allowed(email)):
        raise PermissionDenied
    with transaction.atomic():
        user = user_create_from_identity(email, username_hint)
        for invitation in invitations:  # the provider proved the address the invitations name
            invitation_accept(invitation, user)
        if not invitations:
            organisation_create_for(user, user.username)
    return user
