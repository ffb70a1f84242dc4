"""The production server: uvicorn (uvloop + httptools) workers, plus the usage writer when Redis is used."""

import os
import subprocess
import sys

import uvicorn
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
        writer = None
        if settings.REDIS_URL and not opts["no_writer"]:
            writer = subprocess.Popen([sys.executable, "manage.py", "usage_writer"], cwd=settings.BASE_DIR)
        try:
            uvicorn.run(
                "xrouter_project.asgi:application",
                host=opts["host"],
                port=opts["port"],
                workers=opts["workers"] if opts["workers"] > 1 else None,
                loop="uvloop",
                http="httptools",
                lifespan="on",
                access_log=False,
                backlog=4096,
                # SIGTERM: stop accepting, let open streams finish up to this deadline, then flush usage.
                timeout_graceful_shutdown=int(settings.XROUTER["SHUTDOWN_GRACE"]),
                timeout_keep_alive=30,
                log_level=os.environ.get("LOG_LEVEL", "info").lower(),
            )
        finally:
            if writer is not None:
                writer.terminate()
                writer.wait(timeout=30)
