"""Issue 12, hardening: the image's security properties, read from the Dockerfile and .dockerignore (no Docker
engine here): exact base-image tags, code owned by root and read-only to the runtime user, which writes only
/app/var, no secrets or exports in the build context, and the HEALTHCHECK on /healthz."""

import fnmatch
import re

from tests.conftest import ROOT
from tests.gateway.test_dockerfile import DOCKERFILE, instructions

RUNTIME_UID = "10001"


def all_froms() -> list[str]:
    return [line.split()[1] for line in DOCKERFILE.read_text().splitlines() if line.upper().startswith("FROM ")]


def test_every_base_image_has_an_exact_version_tag():
    for image in all_froms():
        name, _, tag = image.partition("@")[0].partition(":")
        assert tag, f"{image}: no tag"
        assert re.match(r"\d+\.\d+\.\d+-", tag), f"{image}: use an exact version (3.11.14-slim-bookworm), not {tag}"
        assert "latest" not in tag


def test_the_code_belongs_to_root_and_only_var_to_the_runtime_user():
    ops = instructions()
    copies = [args for op, args in ops if op in ("COPY", "ADD")]
    assert copies and not any("--chown" in args or "--chmod" in args for args in copies), \
        "the code and the virtualenv stay root's (read-only to the runtime user)"
    assert [args for op, args in ops if op == "USER"][-1] == RUNTIME_UID
    runs = " ".join(args for op, args in ops if op == "RUN")
    chowns = re.findall(r"chown\s+(?:-\S+\s+)*\S+\s+(\S+)", runs)
    assert chowns == ["/app/var"], chowns
    assert "chmod" not in runs or not re.search(r"chmod\s+(-R\s+)?[0-7]*7[0-7]*\s", runs), "nothing world-writable"
    # The user comes after everything written at build time.
    user_at = max(i for i, (op, _) in enumerate(ops) if op == "USER")
    assert all(i < user_at for i, (op, _) in enumerate(ops) if op in ("COPY", "RUN"))


def test_no_signing_key_is_baked_into_the_image():
    runs = " ".join(args for op, args in instructions() if op == "RUN")
    assert "collectstatic" in runs
    # Loading the development settings generates an ID-token key: it goes to /tmp and is deleted in that step.
    assert re.search(r"XROUTER_OIDC_RSA_KEY_FILE=(/tmp/\S+) .*rm -f \1", runs)


def test_the_healthcheck_probes_healthz():
    checks = [args for op, args in instructions() if op == "HEALTHCHECK"]
    assert len(checks) == 1 and "/healthz" in checks[0] and "/readyz" not in checks[0]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's patterns (Go filepath.Match, `**` for any depth; the last match wins) exclude path."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern] if not pattern.startswith("**/") else [pattern[3:], pattern]
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]  # a directory excludes what is in it
        if any(fnmatch.fnmatchcase(prefix, c) and (c.count("/") == prefix.count("/") or "**" in c)
               for c in candidates for prefix in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_secrets_exports_and_local_state_out_of_the_context():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in (".env", ".env.production", "deploy/.env", "config/.env.local", ".git/config", ".venv/bin/python",
                 "tests/node/node_modules/openai/index.js", "current.yaml", "backup.json", "var/oidc-rsa-key.pem",
                 "var/spool/batch", "db.sqlite3", "deploy/monitoring/xrouter-token", "tls.key", "deploy/tls/tls.crt"):
        assert ignored(path, patterns), f"{path} would enter the image"
    for path in ("manage.py", "apps/gateway/app.py", "config/demo.yaml", "requirements/base.txt",
                 "xrouter_project/settings.py", "static/portal/portal.css"):
        assert not ignored(path, patterns), f"{path} is needed in the image"
