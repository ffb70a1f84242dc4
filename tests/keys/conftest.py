"""The signed-in API client and the portal's browser-like client, for the key tests that need them."""

from tests.accounts.conftest import signed_in  # noqa: F401 (a fixture)
from tests.portal.conftest import browser  # noqa: F401 (a fixture)
