"""The portal's OAuth applications page: developers register and manage their organisations' applications.

Every member sees the applications of their organisations; owners, admins and developers register them;
the registrant and the organisation's owners and admins change and delete them (apps.oauth.services).
An application outside the person's organisations is a 404. A confidential client's secret is shown once,
in the answer to its creation."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from apps.accounts.models import Membership
from apps.oauth.models import Application
from apps.oauth.services import REGISTRANT_ROLES, application_create, application_delete, application_update

MAX_REDIRECT_URIS = 20


def _redirect_uris_field():
    return forms.CharField(
        label=gettext_lazy("Redirect URIs"), required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("One per line: https, or http on a loopback address (127.0.0.1, [::1], localhost). "
                               "Needed for the authorization code flow."))


def _clean_uris(value: str) -> str:
    uris = value.split()
    if len(uris) > MAX_REDIRECT_URIS:
        raise ValidationError(_("At most %(n)s entries.") % {"n": MAX_REDIRECT_URIS})
    return " ".join(uris)


class ApplicationCreateForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=255)
    organisation = forms.TypedChoiceField(label=gettext_lazy("Organisation"), coerce=int)
    client_type = forms.ChoiceField(label=gettext_lazy("Client type"), choices=[
        (Application.CLIENT_PUBLIC, gettext_lazy("Public (browser or mobile app, CLI): PKCE, no secret")),
        (Application.CLIENT_CONFIDENTIAL, gettext_lazy("Confidential (server): has a client secret"))])
    authorization_grant_type = forms.ChoiceField(label=gettext_lazy("Grant"), choices=[
        (Application.GRANT_AUTHORIZATION_CODE, gettext_lazy("Authorization code with PKCE (people sign in)")),
        (Application.GRANT_CLIENT_CREDENTIALS, gettext_lazy("Client credentials (a server acting for itself)"))])
    redirect_uris = _redirect_uris_field()

    def __init__(self, *args, organisations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["organisation"].choices = [(o.pk, o.name) for o in organisations]

    def clean_redirect_uris(self):
        return _clean_uris(self.cleaned_data["redirect_uris"])


class ApplicationEditForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=255)
    redirect_uris = _redirect_uris_field()

    def clean_redirect_uris(self):
        return _clean_uris(self.cleaned_data["redirect_uris"])


def _add_errors(form: forms.Form, exc: Exception) -> None:
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, " ".join(getattr(exc, "messages", None) or [str(exc)]))


def _visible(user):
    """The applications of the person's organisations, with `manageable` set on each."""
    memberships = list(Membership.objects.filter(user=user).select_related("organisation"))
    managed = {m.organisation_id for m in memberships if m.manages}
    applications = list(Application.objects.filter(organisation_id__in=[m.organisation_id for m in memberships])
                        .select_related("organisation", "user").order_by("-created", "-id"))
    for application in applications:
        application.manageable = application.user_id == user.id or application.organisation_id in managed
    return memberships, applications


@login_required
def oauth_apps(request):
    memberships, applications = _visible(request.user)
    registering = [m.organisation for m in memberships if m.role in REGISTRANT_ROLES and m.organisation.is_active]
    form = ApplicationCreateForm(request.POST or None, organisations=registering,
                                 initial={"organisation": request.user.organisation_id})
    created = secret = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        organisation = next(o for o in registering if o.pk == data["organisation"])
        try:
            created, secret = application_create(
                user=request.user, organisation=organisation, name=data["name"], client_type=data["client_type"],
                authorization_grant_type=data["authorization_grant_type"], redirect_uris=data["redirect_uris"])
        except (PermissionDenied, ValidationError) as exc:
            _add_errors(form, exc)
        else:
            form = ApplicationCreateForm(organisations=registering, initial={"organisation": organisation.pk})
            memberships, applications = _visible(request.user)
    response = render(request, "portal/oauth_apps.html", {
        "form": form, "can_register": bool(registering), "applications": applications, "created": created,
        "secret": secret, "discovery": request.build_absolute_uri(reverse("oauth2_provider:oidc-connect-discovery-info"))})
    # The secret is in this body only: no cache, no redirect, no cookie, no session message.
    response["Cache-Control"] = "no-store"
    return response


def _manageable(request, pk) -> Application:
    applications = _visible(request.user)[1]
    application = next((a for a in applications if a.pk == pk), None)
    if application is None:
        raise Http404
    if not application.manageable:
        raise PermissionDenied(_("Only the application's registrant and the organisation's owners and admins may change it."))
    return application


@login_required
def oauth_app_edit(request, pk):
    application = _manageable(request, pk)
    form = ApplicationEditForm(request.POST or None, initial={
        "name": application.name, "redirect_uris": "\n".join(application.redirect_uris.split())})
    if request.method == "POST" and form.is_valid():
        try:
            application_update(application, by=request.user, **form.cleaned_data)
        except (PermissionDenied, ValidationError) as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, _("Application %(name)s is saved.") % {"name": application.name})
            return redirect("portal:oauth_apps")
    return render(request, "portal/oauth_app_edit.html", {"form": form, "application": application})


@login_required
@require_POST
def oauth_app_delete(request, pk):
    application = _manageable(request, pk)
    application_delete(application, by=request.user)
    messages.success(request, _("Application %(name)s is deleted; its tokens no longer work.") % {"name": application.name})
    return redirect("portal:oauth_apps")
