"""The shapes of the tokens we issue: recognisable at a glance, so /v1 refuses anything else unlooked-up.

`xro-` access tokens work on /v1 and the management API; `xrr-` refresh tokens only at /o/token/.
Both carry 256 random bits, so a SHA-256 of the whole token is a safe lookup key (the toolkit's
`token_checksum`, the only form stored: COMPLIANT_BCP_RFC9700_TOKEN_STORAGE)."""

import re
import secrets

ACCESS_TOKEN_SHAPE = re.compile(r"xro-[A-Za-z0-9_-]{43}")


def new_access_token(request=None) -> str:
    return f"xro-{secrets.token_urlsafe(32)}"


def new_refresh_token(request=None) -> str:
    return f"xrr-{secrets.token_urlsafe(32)}"
