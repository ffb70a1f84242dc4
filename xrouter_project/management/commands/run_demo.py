"""`make run`: migrate, load the demo configuration, create an admin and a key, start the
emulators, and serve the gateway on 127.0.0.1:8000.

Orchestration of the whole project, so it lives with the project (xrouter_project is an installed
app for its commands), not in an app below it."""

import os
import secrets
import subprocess
import sys
import time
import urllib.request

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from apps.accounts.models import User
from apps.keys.services import key_create
from xrouter_project import server


class Command(BaseCommand):
    help = "Run the demo: emulators + gateway, with an admin user and an API key printed once."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, **opts):
        if not settings.XROUTER_FETCH_ALLOW:
            # The demo's providers are the emulators on loopback: the one exception to the rule that provider
            # connections go to public addresses (apps/providers/destinations.py), here and in the server's workers.
            os.environ["XROUTER_FETCH_ALLOW"] = "127.0.0.0/8"
            settings.XROUTER_FETCH_ALLOW = ["127.0.0.0/8"]
        call_command("migrate", verbosity=0)
        call_command("collectstatic", verbosity=0, interactive=False)
        call_command("import_config", str(settings.BASE_DIR / "config" / "demo.yaml"))
        admin, created = User.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        password = None
        if created:
            password = secrets.token_urlsafe(12)
            admin.set_password(password)
            admin.save()
        _key, plaintext = key_create(user=admin, name=f"demo-{int(time.time())}")
        emulators = subprocess.Popen([sys.executable, "manage.py", "run_emulators"], cwd=settings.BASE_DIR)  # nosec B603 # fixed argv, no shell
        _wait_for_emulators()
        base = f"http://127.0.0.1:{opts['port']}"
        self.stdout.write(self.style.SUCCESS("\nXRouter demo"))
        self.stdout.write(f"  API:    {base}/v1   (OpenAI-compatible; try model gigachat/GigaChat-2-Max)")
        self.stdout.write(f"  Admin:  {base}/admin/  user admin" + (f", password {password}" if password else " (password set earlier)"))
        self.stdout.write(f"  Docs:   {base}/api/docs/")
        self.stdout.write(f"  Key (shown once): {plaintext}\n")
        argv = ["--host", os.environ.get("XROUTER_HOST", "127.0.0.1"), "--port", str(opts["port"]),
                "--ws-max-size", str(settings.XROUTER["MAX_BODY_BYTES"])]
        if settings.REDIS_URL:
            argv.append("--writer")
            # The lean writer has no Django settings: it needs the keys that sign usage (serve does the same).
            os.environ.setdefault("XROUTER_BUS_HMAC_KEYS", ",".join(settings.BUS_HMAC_KEYS))
        try:
            server.main(argv)
        finally:
            emulators.terminate()
            emulators.wait(timeout=10)


def _wait_for_emulators(seconds: float = 30.0) -> None:
    """The gateway's first request should not race the emulators' start."""
    deadline = time.monotonic() + seconds
    for port in settings.EMULATOR_PORTS.values():
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{settings.EMULATOR_HOST}:{port}/_emulator/health", timeout=1):  # nosec B310 # an http URL we build
                    break
            except OSError:
                time.sleep(0.2)
