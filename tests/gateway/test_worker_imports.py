"""A /v1 worker starts without the management API's heavy libraries (idle memory is a `make bench` target):
they load with the URLconf on the first Django request, not at start."""

import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("drf_spectacular.plumbing", "rest_framework.fields", "pygments", "requests", "unittest", "authlib", "qrcode")


def test_a_worker_starts_without_the_management_apis_libraries():
    probe = ("import sys, django; django.setup(); import xrouter_project.asgi; "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"DJANGO_SETTINGS_MODULE": "xrouter_project.settings", "PATH": "/usr/bin:/bin",
                                 "XROUTER_LOG_JSON": "false"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"loaded at start: {result.stdout.strip()}"
