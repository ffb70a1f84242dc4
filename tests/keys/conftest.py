"""The signed-in API client, the portal's browser-like client and acme's billing viewer, for the key tests."""

from tests.accounts.conftest import signed_in  # noqa: F401 (a fixture)
from tests.portal.conftest import browser, dave  # noqa: F401 (fixtures; dave is acme's billing viewer)
