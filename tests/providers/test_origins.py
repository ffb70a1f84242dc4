"""Which URL edits move a provider's secrets to another origin (issue 8 item 20): scheme, host and
port decide; the path does not; default ports equal their absence."""

import pytest

from apps.providers.models import url_origin


@pytest.mark.parametrize(("old", "new", "moved"), [
    ("https://api.example/v1", "https://api.example/v2/other", False),
    ("https://api.example/v1", "https://API.example:443/v1", False),
    ("http://api.example/v1", "http://api.example:80/v1", False),
    ("https://api.example/v1", "http://api.example/v1", True),
    ("https://api.example/v1", "https://api.example:8443/v1", True),
    ("https://api.example/v1", "https://api.example.evil/v1", True),
    ("https://api.example/v1", "https://user@evil.example/v1", True),
    ("", "https://auth.example/oauth", True),
    ("https://auth.example/oauth", "", True),
    ("", "", False),
])
def test_an_origin_is_scheme_host_and_port(old, new, moved):
    assert (url_origin(old) != url_origin(new)) is moved
