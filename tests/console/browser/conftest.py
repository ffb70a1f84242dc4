"""The console's Chromium tests (a package of their own: Playwright's event loop stays on the thread while its
browser runs, which the synchronous ORM of the tests after them would refuse) reuse tests/browser's: one headless Debian
Chromium (Playwright with executable_path) and a served gateway over the demo configuration (`portal`)."""

from tests.browser.conftest import chromium, page_for, portal  # noqa: F401 (fixtures)
