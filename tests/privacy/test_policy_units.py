"""Which policy applies: the strictest of the key's, its organisation's and the rule's (no server)."""

from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from apps.common.personal_data import MODES, Policy, policies_of, strictest, validate_terms


def row(mode="off", names=False, terms=()):
    return SimpleNamespace(pd_policy=mode, pd_names=names, blocked_terms=list(terms))


def test_a_row_asking_for_nothing_has_no_policy():
    assert Policy.of(row()) is None
    assert policies_of(row(), None, row()) == ()


def test_terms_alone_make_a_policy_and_are_compared_folded():
    assert Policy.of(row(terms=[" Инсайд "])).terms == ("инсайд",)


@pytest.mark.parametrize(("modes", "expected"), [
    (["mask", "off"], "mask"),
    (["pseudonymize", "mask"], "pseudonymize"),
    (["redact", "pseudonymize"], "redact"),
    (["pseudonymize", "redact", "mask"], "redact"),
    (["off", "off"], "off"),
])
def test_the_strictest_mode_wins_whatever_the_order(modes, expected):
    policies = tuple(Policy(mode=m) for m in modes)
    assert strictest(policies, "RU")[0] == expected
    assert strictest(tuple(reversed(policies)), "RU")[0] == expected


def test_modes_are_listed_in_ascending_strictness():
    assert MODES == ("off", "mask", "pseudonymize", "redact")


def test_names_come_from_any_applicable_policy_that_detects():
    policies = (Policy(mode="redact"), Policy(mode="mask", names=True))
    assert strictest(policies, "RU") == ("redact", True)
    assert strictest((Policy(mode="off", names=True, terms=("x",)),), "RU") == ("off", False)


def test_a_jurisdiction_bound_policy_applies_only_outside_it():
    policies = (Policy(mode="mask"), Policy(mode="redact", names=True, outside="RU"))
    assert strictest(policies, "RU") == ("mask", False)
    assert strictest(policies, "US") == ("redact", True)
    assert strictest(policies, "") == ("redact", True)  # unknown jurisdiction: not known to be inside


def test_blocked_terms_are_validated():
    validate_terms(["a", "b c"])
    for bad in ("a", [""], [1], ["x" * 201], ["t"] * 201):
        with pytest.raises(ValidationError):
            validate_terms(bad)


def test_natasha_is_never_loaded_by_a_policy_without_names():
    """In a fresh interpreter: a pseudonymized request whose policy does not ask for names imports no NLP."""
    import os
    import subprocess
    import sys

    code = """
import sys, django
django.setup()
from types import SimpleNamespace
from apps.common.personal_data import Policy
from apps.privacy.guardrails import guard_for
key = SimpleNamespace(kind="key", id=1, organisation_id=None, policies=(Policy(mode="pseudonymize"),))
guard = guard_for(key, SimpleNamespace(policies=()), {"messages": [{"role": "user", "content": "Иван Петров, +7 912 345-67-89"}]}, "r")
target = SimpleNamespace(model=SimpleNamespace(jurisdiction="RU", provider="p", public_id="p/m"))
assert "[PHONE_1]" in guard.upstream(target)["messages"][0]["content"]
print(sorted(m for m in sys.modules if m.split(".")[0] in ("natasha", "navec", "slovnet") or m == "apps.privacy.names"))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "DJANGO_SETTINGS_MODULE": "xrouter_project.settings"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
