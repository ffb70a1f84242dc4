"""The production server: uvicorn (uvloop + httptools) workers, plus the usage writer when Redis is used."""

import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve XRouter (the /v1 gateway, admin, API and WebSockets) with uvicorn."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("XROUTER_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("XROUTER_PORT", "8000")))
        parser.add_argument("--workers", type=int, default=int(os.environ.get("XROUTER_WORKERS", "1")))
        parser.add_argument("--no-writer", action="store_true", help="do not start the usage writer (run it apart)")

    def handle(self, *args, **opts):
        argv = [
            sys.executable, "-m", "xrouter_project.server",
            "--host", opts["host"], "--port", str(opts["port"]), "--workers", str(opts["workers"]),
            "--grace", str(settings.XROUTER["SHUTDOWN_GRACE"]),
            "--log-level", os.environ.get("LOG_LEVEL", "info").lower(),
            "--ws-max-size", str(settings.XROUTER["MAX_BODY_BYTES"]),
        ]
        if settings.REDIS_URL and not opts["no_writer"]:
            argv.append("--writer")
            # The writer may be the lean one, without Django settings: it needs the keys that sign usage.
            os.environ.setdefault("XROUTER_BUS_HMAC_KEYS", ",".join(settings.BUS_HMAC_KEYS))
        sys.stdout.flush()
        # exec: the supervising process sheds Django's memory; workers load the app themselves.
        os.chdir(settings.BASE_DIR)
        os.execv(sys.executable, argv)  # nosec B606 # our own argv, no shell
