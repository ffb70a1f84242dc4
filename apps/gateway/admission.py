"""After a key is known: may it be used from where the request comes? (Its IP allow-list.) And note its use."""

from apps.common.client_address import scope_client_address
from apps.common.errors import ApiError
from apps.keys import last_used
from apps.keys.selectors import KeyInfo


def admit(key: KeyInfo, scope) -> None:
    """403 `ip_not_allowed` when the client address (apps.common.client_address) is outside the key's
    allow-list or its organisation's; otherwise an API key counts as used (last_used_at, written in batches; an OAuth token's or a
    JWT's id is no ApiKey's)."""
    if key.networks or key.organisation_networks:  # the address is resolved only for keys that need it
        refusal = key.address_refusal(scope_client_address(scope))
        if refusal:
            raise ApiError(403, refusal, code="ip_not_allowed")
    if key.kind == "key":
        last_used.mark(key.id)
