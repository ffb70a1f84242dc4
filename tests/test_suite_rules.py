"""Rules of this suite: no test flushes the database. A transactional test's flush (transaction=True,
transactional_db, live_server) wipes the session gateway's committed keys and configuration, and every
end-to-end test after it fails with 401; tests that need committed rows use `committed_db` and unique names."""

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
FLUSHING = re.compile(r"transaction\s*=\s*True|\btransactional_db\b|\blive_server\b|TransactionTestCase")


def test_no_test_flushes_the_database():
    offenders = sorted(f"{path.relative_to(TESTS.parent)}:{number}"
                       for path in TESTS.rglob("*.py") if path.name != "test_suite_rules.py"
                       for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                       if FLUSHING.search(line))
    assert offenders == [], "use the committed_db fixture instead: " + ", ".join(offenders)
