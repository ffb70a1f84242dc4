"""Which models a key may reach: the one check behind the router and /v1/models.

A key's `allowed_models` lists model globs (`gigachat/*`) and, exactly, the names of rules and
aliases it may ask for. Only an entry that is glob-free and equal to the requested name grants
that name's targets; otherwise every target must pass the key's globs on its own, so neither a
glob asked for literally (`gigachat/*`) nor a rule can widen a key.
"""

from apps.keys.selectors import KeyInfo

GLOB_CHARS = frozenset("*?[")


def is_glob(name: str) -> bool:
    return not GLOB_CHARS.isdisjoint(name)


def may_use(key: KeyInfo, requested: str, target: str, models) -> bool:
    """May `key`, asking for `requested` (a model, alias or rule name), be served by model `target`?

    `models` is the catalog's set of model ids: a model's own name never grants other targets."""
    if not key.allowed_models or key.allows(target):
        return True
    return requested in key.allowed_models and not is_glob(requested) and requested not in models


def in_residency(key: KeyInfo, jurisdiction: str) -> bool:
    return not key.residency or jurisdiction == key.residency
