"""The portal's forms. Labels and messages are translated (Russian by default)."""

import datetime

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import User
from apps.keys.models import DEFAULT_SCOPES, MAX_ALLOWED_IPS, SCOPES, parse_networks

MAX_ALLOWED_MODELS = 50


def domain_allowed(email: str) -> bool:
    """The `domains` sign-up policy's rule (other policies: every address)."""
    return (settings.XROUTER["SIGNUP"] != "domains"
            or email.rsplit("@", 1)[-1].lower() in settings.XROUTER["SIGNUP_DOMAINS"])


class SignupForm(UserCreationForm):
    email = forms.EmailField(label=_("E-mail"))
    organisation = forms.CharField(label=_("Organisation"), max_length=180, required=False,
                                   help_text=_("Your own organisation; empty: your username."))

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if not domain_allowed(email):
            raise ValidationError(_("Sign-up is open to addresses of these domains only: %(domains)s."),
                                  params={"domains": ", ".join(settings.XROUTER["SIGNUP_DOMAINS"]) or "—"})
        if User.objects.filter(email__iexact=email).exists():
            raise ValidationError(_("An account with this e-mail address exists already."))
        return email


class LoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": _("Too many failed attempts. Try again in %(minutes)s minutes."),
    }


class KeyCreateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    organisation = forms.TypedChoiceField(label=_("Organisation"), coerce=int)
    scopes = forms.MultipleChoiceField(label=_("Scopes"), choices=[(s, s) for s in SCOPES], initial=list(DEFAULT_SCOPES),
                                       widget=forms.CheckboxSelectMultiple)
    allowed_models = forms.CharField(
        label=_("Allowed models"), required=False, max_length=4000,
        help_text=_('Comma separated globs or names, e.g. "gigachat/*"; empty: every model the policy allows.'))
    allowed_ips = forms.CharField(
        label=_("Allowed IP addresses"), required=False, max_length=4000,
        help_text=_('Comma separated addresses or networks, e.g. "203.0.113.0/24, 2001:db8::/32"; empty: any.'))
    expires_on = forms.DateField(label=_("Expires on"), required=False,
                                 widget=forms.DateInput(attrs={"type": "date"}),
                                 help_text=_("Empty: never. The key stops working at the start of that day."))

    def __init__(self, *args, organisations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["organisation"].choices = [(o.pk, o.name) for o in organisations]

    def clean_allowed_models(self):
        models = [m.strip() for m in self.cleaned_data["allowed_models"].split(",") if m.strip()]
        if len(models) > MAX_ALLOWED_MODELS:
            raise ValidationError(_("At most %(n)s entries."), params={"n": MAX_ALLOWED_MODELS})
        return models

    def clean_allowed_ips(self):
        entries = [n.strip() for n in self.cleaned_data["allowed_ips"].split(",") if n.strip()]
        if len(entries) > MAX_ALLOWED_IPS:
            raise ValidationError(_("At most %(n)s entries."), params={"n": MAX_ALLOWED_IPS})
        for entry in entries:
            try:
                parse_networks([entry])
            except ValidationError:
                raise ValidationError(_("“%(entry)s” is not an IP address or network (CIDR)."),
                                      params={"entry": entry}) from None
        return entries

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day is None:
            return None
        if day <= timezone.localdate():
            raise ValidationError(_("Choose a day after today."))
        return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


class KeyRotateForm(forms.Form):
    GRACE = {"0": datetime.timedelta(0), "3600": datetime.timedelta(hours=1), "86400": datetime.timedelta(days=1),
             "604800": datetime.timedelta(days=7)}
    grace = forms.TypedChoiceField(
        label=_("The old key keeps working"), coerce=lambda v: KeyRotateForm.GRACE[v], initial="86400",
        choices=[("0", _("no longer (refused at once)")), ("3600", _("for 1 hour")), ("86400", _("for 1 day")),
                 ("604800", _("for 7 days"))])


class CodeForm(forms.Form):
    code = forms.CharField(label=_("Code"), max_length=32, widget=forms.TextInput(
        attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}),
        help_text=_("Six digits from your authenticator app, or one of your recovery codes."))


class InviteForm(forms.Form):
    email = forms.EmailField(label=_("E-mail"), max_length=254)  # the column's length
    role = forms.ChoiceField(label=_("Role"))

    def __init__(self, *args, roles=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = roles


class InvitationSignupForm(UserCreationForm):
    """The invited address's own account: the e-mail comes from the invitation, proved by its link."""

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username",)
