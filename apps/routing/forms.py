"""The routing rule's change form: targets as rows (a model picker, a weight, a timeout), keys and
organisations picked from lists, tags typed as words, failure classes as boxes. The rule still stores
JSON lists (RoutingRule); RoutingRule.clean() — the same check as import_config's — names the bad field."""

from django import forms
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.template.loader import render_to_string

from apps.accounts.models import Organisation
from apps.keys.models import ApiKey
from apps.providers.models import ProviderModel

from .models import RoutingRule
from .rules import FAILURE_CLASSES

MAX_TARGETS = 20  # rows the form reads, whatever the request says
BLANK_ROWS = 1  # empty rows under the rule's targets (the "Add a target" button adds more)
MAX_CHOICES = 1000  # keys and organisations offered in the pickers (those already chosen are always kept)


def _number(raw: str):
    """A number when it is one; the text as typed otherwise (so the rule's check names the field)."""
    raw = (raw or "").strip()
    try:
        value = float(raw)
    except ValueError:
        return raw
    return int(value) if value.is_integer() else value


class TargetsWidget(forms.Widget):
    """One row per target: `targets-<i>-model|weight|timeout`, `targets-rows` rows in all."""

    class Media:
        js = ["admin/xrouter/targets.js"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.models: list[tuple[str, str]] = []

    def value_from_datadict(self, data, files, name):
        try:
            count = min(int(data.get(f"{name}-rows", 0)), MAX_TARGETS)
        except ValueError:
            count = 0
        targets = []
        for i in range(count):
            model = (data.get(f"{name}-{i}-model") or "").strip()
            if not model:
                continue  # an empty row, or one cleared to remove it
            target = {"model": model}
            weight, timeout = data.get(f"{name}-{i}-weight", ""), data.get(f"{name}-{i}-timeout", "")
            if weight.strip():
                target["weight"] = _number(weight)
            if timeout.strip():
                target["timeout"] = _number(timeout)
            targets.append(target)
        return targets

    def render(self, name, value, attrs=None, renderer=None):
        rows = [t if isinstance(t, dict) else {"model": str(t)} for t in (value or [])]
        rows += [{}] * BLANK_ROWS
        known = {m for m, _ in self.models}
        choices = self.models + [(r["model"], f"{r['model']} (not a known model)") for r in rows
                                 if r.get("model") and r["model"] not in known]
        return render_to_string("admin/routing/widgets/targets.html", {
            "name": name, "rows": rows, "choices": choices, "count": len(rows), "max": MAX_TARGETS})


class TargetsField(forms.Field):
    widget = TargetsWidget

    def prepare_value(self, value):
        return value if isinstance(value, list) else []


class TagsField(forms.CharField):
    """Tags typed as words, separated by commas; stored as a list."""

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return sorted({t.strip() for t in (super().to_python(value) or "").split(",") if t.strip()})


class RoutingRuleForm(forms.ModelForm):
    targets = TargetsField(help_text="Tried in this order by the fallback strategy; the weight counts for "
                                     "weighted random; the timeout (seconds) bounds each attempt on that target.")
    match_keys = forms.MultipleChoiceField(required=False, label="Match keys",
                                           widget=FilteredSelectMultiple("keys", is_stacked=False),
                                           help_text="Only requests made with these keys (none chosen: any key).")
    match_organisations = forms.TypedMultipleChoiceField(
        required=False, coerce=int, label="Match organisations", widget=FilteredSelectMultiple("organisations", False),
        help_text="Only requests of these organisations (none chosen: any).")
    match_tags = TagsField(required=False, label="Match tags",
                           help_text="Comma separated; every one must be present (x-xrouter-tags or metadata.tags).")
    fallback_on = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                            choices=[(c, c) for c in sorted(FAILURE_CLASSES)],
                                            help_text="Failures after which the next target is tried.")

    class Meta:
        model = RoutingRule
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        rule = self.instance
        self.fields["targets"].widget.models = [
            (str(m), f"{m} ({m.kind}{', ' + m.effective_jurisdiction if m.effective_jurisdiction else ''}"
                     f"{', disabled' if not (m.enabled and m.provider.enabled) else ''})")
            for m in ProviderModel.objects.select_related("provider").order_by("provider__name", "name")]
        keys = [(k.prefix, f"xr-{k.prefix}… {k.name}") for k in ApiKey.objects.filter(revoked_at__isnull=True)
                .order_by("-created_at").only("prefix", "name")[:MAX_CHOICES]]
        chosen = set(self.initial.get("match_keys") or rule.match_keys or ())
        keys += [(p, f"xr-{p}… (revoked or unknown)") for p in sorted(chosen - {p for p, _ in keys})]
        self.fields["match_keys"].choices = keys
        organisations = [(o.id, o.name) for o in Organisation.objects.order_by("name").only("name")[:MAX_CHOICES]]
        chosen_orgs = {int(o) for o in (rule.match_organisations or ()) if str(o).isdigit()}
        organisations += [(o, f"#{o} (unknown)") for o in sorted(chosen_orgs - {i for i, _ in organisations})]
        self.fields["match_organisations"].choices = organisations
