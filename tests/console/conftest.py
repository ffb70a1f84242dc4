"""The console's Chromium tests reuse tests/browser's: one headless Debian Chromium (Playwright with
executable_path) and a served gateway over the demo configuration (`portal`)."""

from tests.browser.conftest import chromium, page_for, portal  # noqa: F401 (fixtures)
