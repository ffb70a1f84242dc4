"""The start-record journal (apps/usage/journal.py) as a unit: lines, rotation, removal only once
every attempt in a file ended, and which files another process may claim as a dead one's."""

import os
import subprocess
import sys

import orjson
import pytest
from django.conf import settings

from apps.usage import journal


@pytest.fixture
def spool(tmp_path, monkeypatch):
    monkeypatch.setitem(settings.XROUTER, "SPOOL_DIR", str(tmp_path))
    journal.remove(journal.rotate())
    yield tmp_path
    for gen in journal._closed:
        gen.open = 0
    journal.remove(journal.rotate())


def start_line(request_id: str, attempt: int = 0) -> list:
    values = dict.fromkeys(journal.START_FIELDS, "")
    values.update(request_id=request_id, attempt=attempt, ts=1_800_000_000.5, prompt_tokens=12, stream=False,
                  input_price="1", output_price="2", cached_input_price="0")
    return list(values.values())


def journals(directory) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.startswith("starts-"))


def test_a_file_goes_only_once_every_attempt_started_in_it_has_ended(spool):
    first, second = journal.start(start_line("a")), journal.start(start_line("b"))
    assert first is second and first.open == 2
    [name] = journals(spool)
    assert name.startswith(f"starts-{os.getpid()}-") and name.endswith(".journal")
    assert journal.rotate() == []  # closed, but two attempts still run
    third = journal.start(start_line("c"))  # a new file for what starts after the rotation
    assert third is not first and len(journals(spool)) == 2
    first.open -= 1
    assert journal.rotate() == []
    first.open -= 1
    ended = journal.rotate()
    assert ended == [first]
    journal.remove(ended)
    assert len(journals(spool)) == 1 and journal.live_count() == 1  # c's file, closed with c still open


def test_each_start_is_one_json_line_of_the_start_fields(spool):
    journal.start(start_line("x", 2))
    [name] = journals(spool)
    line = (spool / name).read_bytes()
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and len(line) < 300
    assert dict(zip(journal.START_FIELDS, orjson.loads(line), strict=True))["attempt"] == 2


def test_only_dead_or_foreign_journals_are_claimable_and_a_claim_is_exclusive(spool):
    journal.start(start_line("mine"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    (spool / f"starts-{dead_pid}-100.journal").write_bytes(orjson.dumps(start_line("lost-1")) + b"\n")
    (spool / f"starts-{os.getppid()}-200.journal").write_bytes(b"")  # a live process's
    (spool / f"starts-{os.getpid()}-50.journal").write_bytes(b"")  # an earlier process with this pid
    (spool / "starts-abc.journal").write_bytes(b"")  # not ours at all
    found = journal.claimable(str(spool))
    assert [os.path.basename(p) for p in found] == [f"starts-{os.getpid()}-50.journal", f"starts-{dead_pid}-100.journal"]
    claimed = journal.claim(found[1])
    assert os.path.basename(claimed) == f"starts-{os.getpid()}-100.lost"
    assert journal.claim(found[1]) is None  # taken already
    assert [r["request_id"] for r in journal.lost_records(claimed)] == ["lost-1"]


def test_a_torn_or_foreign_line_is_skipped_and_a_start_becomes_an_estimated_worker_lost_record(tmp_path):
    path = tmp_path / "starts-1-1.lost"
    path.write_bytes(orjson.dumps(start_line("ok")) + b"\n" + b'["short"]\n' + b"x" * 5000 + b"\n"
                     + orjson.dumps(start_line("torn"))[:30])
    [lost] = journal.lost_records(str(path))
    assert lost["request_id"] == "ok" and lost["status"] == "worker_lost"
    assert (lost["prompt_tokens"], lost["completion_tokens"], lost["estimated"]) == (12, 0, True)
    assert lost["ts"] == 1_800_000_000.5  # the attempt's start: the same created_at as its real row would have


def test_a_journal_that_cannot_be_written_costs_one_error_line_not_one_per_request(tmp_path, monkeypatch, caplog):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setitem(settings.XROUTER, "SPOOL_DIR", str(blocked / "spool"))
    journal.remove(journal.rotate())
    monkeypatch.setattr(journal, "_retry_at", 0.0)
    assert [journal.start(start_line(f"r{n}")) for n in range(50)] == [None] * 50
    assert len([r for r in caplog.records if "usage journal write failed" in r.getMessage()]) == 1
