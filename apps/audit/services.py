"""Recording audit events. The actor and address come from the request being served (the
middleware puts it in a context variable; DRF's authenticated user is read at record time), or
are given; a command-line action has neither and is recorded as the system."""

import contextvars
import logging

from .models import AuditEvent

log = logging.getLogger(__name__)
_request: contextvars.ContextVar = contextvars.ContextVar("audit_request", default=None)
SECRET_WORDS = ("secret", "password", "token", "key_material", "authorization", "hashed")


def audit(action: str, *, target=None, detail: dict | None = None, actor=None, request=None) -> AuditEvent:
    """Append one event. `target`: a model instance (its type, id and str are kept) or None."""
    request = request if request is not None else _request.get()
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        actor = user if getattr(user, "is_authenticated", False) else None
    ip = getattr(request, "client_address", None) if request is not None else None
    return AuditEvent.objects.create(
        action=action,
        actor_id=getattr(actor, "pk", None),
        actor=(actor.get_username() if hasattr(actor, "get_username") else str(actor or "system"))[:150],
        ip=str(ip) if ip is not None else None,
        target_type=target._meta.label_lower[:64] if target is not None else "",
        target_id=str(target.pk)[:64] if target is not None else "",
        target=str(target)[:200] if target is not None else "",
        detail=_clean(detail or {}),
    )


def _clean(detail: dict) -> dict:
    """Drop what could be a secret: a field named like one is kept as "[redacted]"."""
    return {k: "[redacted]" if any(w in k.lower() for w in SECRET_WORDS) else v for k, v in detail.items()}


class AuditContextMiddleware:
    """Makes the request being served the audit log's source of actor and client address."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)
