"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright for Python, against a real gateway.

`chromium` is one browser per run, started with flags that keep it on this machine (no background
networking, updates, sync or QUIC) and a fresh profile in a temporary folder; `page_for(locale)` opens a
fresh context per test (cookies of its own) in "ru" or "en". `portal` is a gateway process serving the
whole product (portal, admin, /v1, WebSocket) whose e-mails land as files that `portal.mail_to()` reads.
Playwright's own browser download is never used.
"""

import email
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import Gateway, demo_config, need, start_gateway, stop_gateway

CHROMIUM = os.environ.get("XROUTER_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="package")
def chromium():
    """One headless Chromium for tests/browser; Playwright gives it a fresh, temporary profile. Package-scoped:
    Playwright's event loop stays on this thread while it runs, and Django refuses synchronous ORM calls of the
    tests that come after (SynchronousOnlyOperation) until it stops."""
    need("Chromium (/usr/bin/chromium; apt-get install chromium)", shutil.which(CHROMIUM) is not None)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page_for(chromium, monkeypatch):
    """page_for(locale="ru") → a Playwright page in a fresh browser context (cookies of its own)."""
    # Playwright's sync API keeps an event loop in this thread; the ORM calls a test makes between
    # browser steps are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    contexts = []

    def open_page(locale: str = "ru"):
        context = chromium.new_context(locale=locale, extra_http_headers={"Accept-Language": locale})
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


class Portal(Gateway):
    def __init__(self, base_url, process, env, mail_dir: Path):
        super().__init__(base_url, process, env, {})
        self.mail_dir = mail_dir

    def mail_to(self, address: str, timeout: float = 10.0) -> email.message.Message:
        """The newest e-mail sent to `address` (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = []
            for path in sorted(self.mail_dir.glob("*.log"), key=lambda p: p.stat().st_mtime):
                for chunk in path.read_text().split("-" * 79):
                    if chunk.strip():
                        message = email.message_from_string(chunk.strip())
                        if address in (message.get("To") or ""):
                            found.append(message)
            if found:
                return found[-1]
            time.sleep(0.1)
        raise AssertionError(f"no e-mail to {address} within {timeout}s")

    def link_in_mail_to(self, address: str) -> str:
        message = self.mail_to(address)
        body = message.get_payload(decode=True) if not message.is_multipart() else \
            message.get_payload(0).get_payload(decode=True)
        path = re.search(r"https?://[^/\s]+(/\S+)", body.decode()).group(1)
        return self.base_url + path


@pytest.fixture(scope="session")
def portal(django_db_setup, django_db_blocker, emulators, tmp_path_factory):
    """A gateway over the demo configuration that serves the portal, open sign-up, e-mails as files."""
    from apps.routing.config_schema import parse_config
    from apps.routing.services import config_import

    with django_db_blocker.unblock():
        config_import(parse_config(demo_config(emulators)))
    mail_dir = tmp_path_factory.mktemp("mail")
    env = {"XROUTER_EMAIL_DIR": str(mail_dir), "XROUTER_SIGNUP": "open",
           "XROUTER_USAGE_STREAM": f"xrouter:usage:test:portal{os.getpid()}"}
    process, base = start_gateway(env)
    yield Portal(base, process, env, mail_dir)
    stop_gateway(process)
