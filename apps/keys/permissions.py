"""DRF permission: a request authenticated by an API key needs the view's scope."""

from rest_framework.permissions import BasePermission

from .selectors import KeyInfo


class KeyScope(BasePermission):
    """Views name `required_scope`; a key without it gets 403 naming it. Signed-in people (session,
    the portal) are not limited by scopes: those belong to keys."""

    def has_permission(self, request, view) -> bool:
        scope = getattr(view, "required_scope", None)
        info = request.auth
        if scope is None or not isinstance(info, KeyInfo) or scope in info.scopes:
            return True
        self.message = f"This API key lacks the scope '{scope}' that this endpoint needs."
        return False
