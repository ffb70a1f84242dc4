"""The browser fixtures of tests/browser (one Chromium per package: this folder keeps it apart from the
ORM-only tests beside it)."""

from tests.browser.conftest import chromium, page_for, portal  # noqa: F401
