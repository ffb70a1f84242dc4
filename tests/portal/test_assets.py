"""What the portal ships: vendored static files (no CDN) and a compiled catalog that matches its source."""

import re
import shutil
import subprocess

import pytest
from django.contrib.staticfiles import finders

from tests.conftest import ROOT

TEMPLATES = [*(ROOT / "templates" / "portal").rglob("*.*"), *(ROOT / "templates" / "registration").rglob("*.*")]
CATALOG = ROOT / "locale" / "ru" / "LC_MESSAGES"


def test_the_stylesheet_is_vendored_and_nothing_loads_from_elsewhere():
    assert finders.find("portal/portal.css")
    for path in [*TEMPLATES, *(ROOT / "static").rglob("*.*")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path
        assert "@import" not in text and "url(http" not in text, path


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="gettext's msgfmt is not installed")
def test_the_committed_mo_is_compiled_from_the_po(tmp_path):
    subprocess.run(["msgfmt", "--check", "-o", tmp_path / "django.mo", CATALOG / "django.po"], check=True, timeout=60)
    assert (tmp_path / "django.mo").read_bytes() == (CATALOG / "django.mo").read_bytes(), \
        "run: python manage.py compilemessages -l ru"
    po = (CATALOG / "django.po").read_text(encoding="utf-8")
    assert "#, fuzzy" not in po
    assert not re.search(r'^msgstr ""\n\n', po[po.index("\n\n"):], re.M), "an untranslated message"
