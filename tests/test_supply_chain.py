"""Supply chain gates CI runs: bandit finds nothing unexplained, every suppression is reasoned and listed in
docs/security.md, and the lock files pin (with hashes) exactly what requirements/*.txt ask for."""
import configparser
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("apps", "xrouter_project")  # what .bandit scans: the code that ships, not the tests
SECURITY_DOC = ROOT / "docs" / "security.md"

# `# nosec B608 # why`: the check ids, then a reason after a second `#` (bandit reads the ids up to that `#`;
# words written straight after the ids would be taken for check names).
NOSEC = re.compile(r"#\s*nosec(?P<rest>.*)")  # as bandit finds them (bandit/core/manager.py NOSEC_COMMENT)
REASONED = re.compile(r"^\s*(?P<ids>B\d{3}(?:[ ,]+B\d{3})*)\s*#\s*(?P<reason>\S.{9,})$")
DOC_ROW = re.compile(r"^\|\s*`(?P<where>[^`]+)`\s*\|\s*(?P<ids>B\d{3}(?:[ ,]+B\d{3})*)\s*\|\s*[^|\s][^|]*\|")


def nosec_problem(comment: str) -> str | None:
    """Why a comment's `nosec` is not acceptable, or None when it names its checks and gives a reason."""
    match = NOSEC.search(comment)
    if match is None:
        return None
    if not REASONED.match(match.group("rest")):
        return "a nosec must read `# nosec BNNN # reason` (the checks it silences, then why)"
    return None


def nosec_comments(source: str):
    """(line, comment) for each comment bandit takes for a nosec; strings and docstrings do not count."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and NOSEC.search(token.string):
            yield token.start[0], token.string


def suppressions_in_code() -> tuple[set[tuple[str, str]], list[str]]:
    found, problems = set(), []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for line, comment in nosec_comments(path.read_text(encoding="utf-8")):
                problem = nosec_problem(comment)
                if problem:
                    problems.append(f"{rel}:{line}: {problem}")
                    continue
                ids = REASONED.match(NOSEC.search(comment).group("rest")).group("ids")
                found.update((rel, check) for check in re.findall(r"B\d{3}", ids))
    config = configparser.ConfigParser()
    config.read(ROOT / ".bandit")
    # An `exclude` or a `tests` selection would silence checks no row lists.
    problems += [f".bandit: `{key}` is not allowed" for key in config["bandit"] if key not in ("targets", "recursive", "skips")]
    for check in re.findall(r"B\d{3}", config["bandit"].get("skips", "")):
        found.add((".bandit", check))
    return found, problems


def suppressions_in_doc() -> set[tuple[str, str]]:
    text = SECURITY_DOC.read_text(encoding="utf-8")
    section = text.split("### Suppressions", 1)[1].split("\n#", 1)[0]
    listed = set()
    for line in section.splitlines():
        row = DOC_ROW.match(line)
        if row:
            listed.update((row.group("where"), check) for check in re.findall(r"B\d{3}", row.group("ids")))
    return listed


@pytest.mark.parametrize("comment", [
    "# nosec",
    "# nosec B608",
    "# nosec B608: identifiers from our schema",  # bandit would read the reason's words as check names
    "# nosec B608 # ok",                           # a reason too short to say anything
    "# noqa: S102  # nosec",
])
def test_it_refuses_a_nosec_without_checks_or_reason(comment):
    assert nosec_problem(comment)


@pytest.mark.parametrize("comment", [
    "# nosec B608 # identifiers from our own schema; values are bound",
    "# nosec B308 B703 # SVG we draw ourselves",
    "# noqa: S102 (why)  # nosec B102 # source built from constants, no input",
])
def test_it_accepts_a_nosec_with_checks_and_reason(comment):
    assert nosec_problem(comment) is None


def test_every_suppression_is_reasoned_and_listed_in_the_security_doc():
    in_code, problems = suppressions_in_code()
    assert not problems, "\n".join(problems)
    listed = suppressions_in_doc()
    assert in_code, "no suppression found: the scan itself is broken"
    assert not in_code - listed, f"add to docs/security.md (Suppressions): {sorted(in_code - listed)}"
    assert not listed - in_code, f"listed in docs/security.md but gone from the code: {sorted(listed - in_code)}"


def test_bandit_finds_nothing():
    result = subprocess.run(
        [sys.executable, "-m", "bandit", "--ini", ".bandit", "-q", "-f", "custom",
         "--msg-template", "{relpath}:{line} {test_id} [{severity}/{confidence}] {msg}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    findings = [line for line in result.stdout.splitlines() if re.match(r"\S+:\d+ B\d{3} ", line)]
    assert not findings, ("bandit found (fix it, or `# nosec BNNN # reason` plus a row in docs/security.md):\n"
                          + "\n".join(findings))
    assert result.returncode == 0, f"bandit did not run: {result.stdout}{result.stderr[-2000:]}"


CITED = re.compile(r"`(?P<path>tests/[\w/]+\.py)(?:::(?P<name>\w+))?`(?P<pending> \*\(this round\)\*)?")


def test_every_test_the_security_doc_cites_exists():
    missing, cited = [], 0
    for match in CITED.finditer(SECURITY_DOC.read_text(encoding="utf-8")):
        if match.group("pending"):  # arrives with another branch of the same round; verified at merge
            continue
        cited += 1
        path = ROOT / match.group("path")
        name = match.group("name")
        if not path.exists() or (name and not re.search(rf"^(async )?def {name}\(", path.read_text(), re.M)):
            missing.append(match.group(0))
    assert cited > 40
    assert not missing, missing


# --- Lock files ---

def pins(path: Path) -> dict[str, str]:
    """name -> version of each `name==version` line (names normalised as PEP 503 does)."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


def lock_entries(path: Path) -> list[str]:
    """Each requirement of a lock with its continuation lines joined."""
    return [entry for entry in path.read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
            if entry and not entry.startswith(("#", " "))]


LOCKS = ["base", "dev", "clients-openai2", "clients-agents"]  # the last two: tests/libraries' own venvs


@pytest.mark.parametrize("name", LOCKS)
def test_the_lock_pins_what_the_input_asks_for(name):
    wanted, locked = pins(ROOT / "requirements" / f"{name}.txt"), pins(ROOT / "requirements" / f"{name}.lock")
    stale = {pkg: (version, locked.get(pkg)) for pkg, version in wanted.items() if locked.get(pkg) != version}
    assert not stale, f"requirements/{name}.lock is stale (wanted, locked): {stale}: run `make lock`"


@pytest.mark.parametrize("name", LOCKS)
def test_every_locked_release_carries_its_hashes(name):
    entries = lock_entries(ROOT / "requirements" / f"{name}.lock")
    assert len(entries) > 20
    unhashed = [entry.split()[0] for entry in entries if "--hash=sha256:" not in entry]
    assert not unhashed, unhashed


def test_dev_lock_keeps_every_production_pin():
    base, dev = pins(ROOT / "requirements" / "base.lock"), pins(ROOT / "requirements" / "dev.lock")
    assert not {pkg: (version, dev.get(pkg)) for pkg, version in base.items() if dev.get(pkg) != version}


def test_installs_check_the_hashes():
    makefile, dockerfile = (ROOT / "Makefile").read_text(), (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install .*--require-hashes -r requirements/dev\.lock", makefile)
    assert re.search(r"\.venv-%/\.installed: requirements/clients-%\.lock\n(\t.*\n)*\t\S+ -m pip install .*--require-hashes -r \$<", makefile)
    assert re.search(r"COPY requirements/base\.lock (\S+)\nRUN \S*pip install .*--require-hashes -r \1", dockerfile)
    assert not re.search(r"pip install(?!.*--require-hashes)", makefile + dockerfile)
