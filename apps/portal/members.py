"""Members of an organisation and invitations by e-mail.

Every member sees who is in their organisation; owners and admins invite, change roles, remove members and
revoke open invitations, through apps.accounts.services (which hold the role rules: only owners touch the
owner role, the last owner stays). An organisation one is not a member of is a 404.

An invitation link carries its token in the query string (query strings never reach a log line); the page
moves it into the session at once and redirects, so it is in no Referer and no browser history afterwards.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from apps.accounts.models import Invitation, Membership, User
from apps.accounts.selectors import MAX_INVITATION_TOKEN, invitation_by_token, open_invitations
from apps.accounts.services import (
    invitation_accept,
    invitation_create,
    invitation_revoke,
    invitation_sign_up,
    membership_remove,
    membership_set_role,
)

from .forms import InvitationSignupForm, InviteForm
from .views import ROLE_LABELS

Role = Membership.Role
INVITATION = "portal:invitation"  # the session key that holds the token of the link being accepted


def _caller(request, organisation_pk) -> Membership:
    return get_object_or_404(Membership.objects.select_related("organisation"),
                             organisation_id=organisation_pk, user=request.user)


def _grantable(caller: Membership) -> list[tuple[str, str]]:
    return [(role, ROLE_LABELS[role]) for role in Role.values if role != Role.OWNER or caller.role == Role.OWNER]


def _page(request, caller: Membership, invite_form=None, status=200):
    organisation = caller.organisation
    return render(request, "portal/members.html", {
        "organisation": organisation, "caller": caller, "manages": caller.manages,
        "members": Membership.objects.filter(organisation=organisation).select_related("user").order_by("user__username"),
        "mine": Membership.objects.filter(user=request.user).select_related("organisation").order_by("organisation__name"),
        "invitations": open_invitations(organisation.pk) if caller.manages else [],
        "roles": _grantable(caller), "role_labels": ROLE_LABELS,
        "invite_form": invite_form or InviteForm(roles=_grantable(caller)),
    }, status=status)


@login_required
def members_home(request):
    first = Membership.objects.filter(user=request.user).order_by("organisation__name").first()
    if first is None:
        messages.info(request, _("You are not a member of any organisation yet."))
        return redirect("portal:dashboard")
    return redirect("portal:members", request.user.organisation_id or first.organisation_id)


@login_required
def members(request, organisation_pk):
    return _page(request, _caller(request, organisation_pk))


def _refusal(exc: Exception) -> str:
    return " ".join(getattr(exc, "messages", None) or [str(exc)])


@login_required
@require_POST
def invite(request, organisation_pk):
    caller = _caller(request, organisation_pk)
    if not caller.manages:
        raise PermissionDenied
    form = InviteForm(request.POST, roles=_grantable(caller))
    if form.is_valid():
        try:
            # Sent inside the transaction: an invitation whose mail could not go is not left behind.
            with transaction.atomic():
                invitation, token = invitation_create(caller.organisation, form.cleaned_data["email"],
                                                      form.cleaned_data["role"], by=caller,
                                                      days=settings.XROUTER["INVITATION_DAYS"])
                _send_invitation(request, invitation, token)
        except (ValidationError, PermissionDenied) as exc:
            form.add_error("email", _refusal(exc))
        except OSError:  # SMTP down or refusing; bounded by EMAIL_TIMEOUT
            form.add_error(None, _("We could not send the invitation e-mail. Try again later."))
        else:
            messages.success(request, _("%(email)s is invited.") % {"email": invitation.email})
            return redirect("portal:members", caller.organisation_id)
    return _page(request, caller, form, status=400)


def _send_invitation(request, invitation: Invitation, token: str) -> None:
    url = request.build_absolute_uri(f"{reverse('portal:invitation')}?{urlencode({'token': token})}")
    context = {"invitation": invitation, "inviter": request.user, "url": url, "days": settings.XROUTER["INVITATION_DAYS"]}
    send_mail(_("You are invited to %(organisation)s on XRouter") % {"organisation": invitation.organisation.name},
              render_to_string("portal/email/invitation.txt", context), None, [invitation.email])


@login_required
@require_POST
def member_role(request, organisation_pk, pk):
    caller = _caller(request, organisation_pk)
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=pk, organisation_id=caller.organisation_id)
    try:
        membership_set_role(membership, request.POST.get("role", ""), by=caller)
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, _refusal(exc))
    else:
        messages.success(request, _("%(user)s's role is changed.") % {"user": membership.user.username})
    return redirect("portal:members", caller.organisation_id)


@login_required
@require_POST
def member_remove(request, organisation_pk, pk):
    caller = _caller(request, organisation_pk)
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=pk, organisation_id=caller.organisation_id)
    try:
        membership_remove(membership, by=caller)
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, _refusal(exc))
        return redirect("portal:members", caller.organisation_id)
    messages.success(request, _("%(user)s is removed.") % {"user": membership.user.username})
    if membership.user_id == request.user.id:  # they left: the page is no longer theirs
        return redirect("portal:dashboard")
    return redirect("portal:members", caller.organisation_id)


@login_required
@require_POST
def invitation_revoke_view(request, organisation_pk, pk):
    caller = _caller(request, organisation_pk)
    invitation = get_object_or_404(Invitation, pk=pk, organisation_id=caller.organisation_id, accepted_at__isnull=True)
    try:
        invitation_revoke(invitation, by=caller)
    except PermissionDenied as exc:
        messages.error(request, _refusal(exc))
    else:
        messages.success(request, _("The invitation of %(email)s is revoked.") % {"email": invitation.email})
    return redirect("portal:members", caller.organisation_id)


@never_cache
def invitation(request):
    """The invitation link: join as the signed-in person, sign in first, or create the invited account."""
    if "token" in request.GET:
        request.session[INVITATION] = request.GET["token"][:MAX_INVITATION_TOKEN + 1]  # bounded; too long finds none
        return redirect("portal:invitation")
    found = invitation_by_token(request.session.get(INVITATION, ""))
    if found is None:
        request.session.pop(INVITATION, None)
        return render(request, "portal/invitation_invalid.html", status=400)
    context = {"invitation": found}
    user = request.user
    if user.is_authenticated:
        if user.email.strip().lower() != found.email.strip().lower():
            return render(request, "portal/invitation.html", context | {"other_account": True})
        if request.method == "POST":
            return _accepted(request, found, user)
        return render(request, "portal/invitation.html", context)
    if User.objects.filter(email__iexact=found.email).exists():
        return render(request, "portal/invitation.html", context | {
            "sign_in": f"{reverse('login')}?{urlencode({'next': reverse('portal:invitation')})}"})
    form = InvitationSignupForm(request.POST or None, instance=User(email=found.email))
    if request.method == "POST" and form.is_valid():
        try:
            user = invitation_sign_up(found, form.cleaned_data["username"], form.cleaned_data["password1"])
        except ValidationError as exc:
            form.add_error(None, _refusal(exc))
        else:
            auth_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return _welcome(request, found)
    return render(request, "portal/invitation.html", context | {"form": form})


def _accepted(request, found: Invitation, user: User):
    try:
        invitation_accept(found, user)
    except (ValidationError, PermissionDenied) as exc:
        request.session.pop(INVITATION, None)
        messages.error(request, _refusal(exc))
        return redirect("portal:dashboard")
    return _welcome(request, found)


def _welcome(request, found: Invitation):
    request.session.pop(INVITATION, None)
    messages.success(request, _("Welcome to %(organisation)s.") % {"organisation": found.organisation.name})
    return redirect("portal:members", found.organisation_id)
