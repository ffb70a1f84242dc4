"""Events recorded from framework signals: logins (django.contrib.auth), tokens issued by the OAuth
server (django-oauth-toolkit's app_authorized), and every change made in the admin (its LogEntry rows:
providers, credentials, models, rules, aliases, keys, users, organisations, breakers)."""

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save
from django.dispatch import receiver
from oauth2_provider.signals import app_authorized

from .services import audit

ADMIN_ACTIONS = {ADDITION: "admin.added", CHANGE: "admin.changed", DELETION: "admin.deleted"}


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    audit("login.succeeded", target=user, actor=user, request=request)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    # Django hands over the credentials with the password already masked; only the name is kept.
    audit("login.failed", detail={"username": str(credentials.get("username", ""))[:150]}, request=request)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit("logout", target=user, actor=user, request=request)


@receiver(post_save, sender=LogEntry)
def _admin_change(sender, instance: LogEntry, created: bool, **kwargs):
    if not created:
        return
    content_type = instance.content_type
    event = audit(ADMIN_ACTIONS.get(instance.action_flag, "admin.other"), actor=instance.user, detail={
        "model": f"{content_type.app_label}.{content_type.model}" if content_type else "",
        "object_id": str(instance.object_id or ""),
        "object": instance.object_repr,
        "change": instance.get_change_message()[:2000],
    })
    return event


def _oauth_token_issued(sender, request, token, **kwargs):
    application = token.application
    audit("oauth.token_issued", target=application, actor=token.user, detail={
        "grant": getattr(request, "grant_type", "") or "",
        "scope": token.scope,
        "organisation_id": getattr(application, "organisation_id", None),
    })


app_authorized.connect(_oauth_token_issued, dispatch_uid="audit-oauth-token-issued")
