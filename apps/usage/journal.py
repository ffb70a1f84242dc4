"""Start records: the durable half of the usage contract, written before each upstream attempt.

Each gateway process appends one short line per attempt (an orjson list of START_FIELDS, a few
hundred bytes, no request body) to its journal, `starts-<pid>-<ns>.journal` in the spool
directory, with one `os.write` on an O_APPEND descriptor: a few microseconds, no fsync. The line
is in the kernel once the call returns, so it survives the process being killed (kill -9, the
OOM killer); it does not survive the machine losing power before the page cache reaches the
disk. The end record (apps/usage/buffer.py → Redis stream → writer) carries every field, so
the writer never needs the start line of an attempt that ended: the journal matters only when
the process dies mid-attempt.

Bounded: the flusher rotates the journal at every flush (a new file once the current one holds
a line) and removes a closed file once every attempt started in it has ended *and* that end has
left the process (XADD into Redis, the disk spool, or the database) — so a journal holds about
one flush interval of starts, plus the starts of attempts still running.

Dead processes: `claimable()` finds the journals of pids that no longer run (and this pid's
files from an earlier incarnation: a reused pid); buffer.replay_spool claims one by renaming it
(`starts-<claimer pid>-<ns>.lost`), turns each line into a `worker_lost` record with estimated
tokens, sends them through the Redis stream like any batch, then deletes the file. The writer
holds a worker_lost record for a grace period and inserts it only if the attempt's real row has
not arrived by then (apps/usage/writer.py): the real end record always wins.
"""

import itertools
import logging
import os
import re
import time

import orjson

from apps.common.processes import alive

log = logging.getLogger(__name__)
NAME = re.compile(r"^starts-(\d+)-(\d+)\.(journal|lost)$")
# The order of a start line's values. Everything a worker_lost row needs, and nothing of the request's content.
START_FIELDS = ("request_id", "attempt", "ts", "principal", "principal_id", "api_key_id", "key_prefix", "user_id",
                "organisation_id", "endpoint", "provider", "model", "requested_model", "route", "stream",
                "prompt_tokens", "input_price", "output_price", "cached_input_price", "fallback_chain")
MAX_LINE = 4096  # a longer line (which well-formed input cannot make) is not replayed
_sequence = itertools.count()
_BORN = time.time_ns() * 1000  # file names carry time_ns() × 1000 + a sequence: older names are a former process's


class Generation:
    """One journal file and how many of the attempts started in it have not ended yet."""

    __slots__ = ("path", "open")

    def __init__(self, path: str):
        self.path = path
        self.open = 0


RETRY_AFTER = 10.0  # seconds between tries (and error lines) while the journal cannot be written
_retry_at = 0.0
_fd = -1
_current: Generation | None = None
_closed: list[Generation] = []


def _open() -> Generation:
    global _fd, _current
    from django.conf import settings

    directory = settings.XROUTER["SPOOL_DIR"]
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"starts-{os.getpid()}-{time.time_ns() * 1000 + next(_sequence) % 1000}.journal")
    _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    _current = Generation(path)
    return _current


def start(values: list) -> Generation | None:
    """Append one attempt's start line (START_FIELDS' values); returns its generation, whose
    `open` the end of the attempt decrements. None if the journal cannot be written (the
    attempt still runs: losing the start record only loses the worker_lost row)."""
    global _retry_at
    gen = _current
    try:
        if gen is None:
            if _retry_at and time.monotonic() < _retry_at:
                return None  # the directory failed a moment ago: no open (and no log line) per request
            gen = _open()
        os.write(_fd, orjson.dumps(values) + b"\n")
    except (OSError, TypeError) as exc:
        if time.monotonic() >= _retry_at:
            log.error("usage journal write failed (%s); attempts have no start record for the next %.0f s",
                      exc, RETRY_AFTER)
            _retry_at = time.monotonic() + RETRY_AFTER
        return None
    gen.open += 1
    return gen


def rotate() -> list[Generation]:
    """Close the current file if it holds a line, and return the closed generations whose
    attempts have all ended: their files may go once the records now pending have left the process
    (`remove`). Called by the flusher just before it takes the pending records."""
    global _fd, _current
    if _current is not None:
        os.close(_fd)
        _closed.append(_current)
        _fd, _current = -1, None
    return [gen for gen in _closed if gen.open <= 0]


def remove(generations: list[Generation]) -> None:
    for gen in generations:
        try:
            os.unlink(gen.path)
        except FileNotFoundError:
            pass
        try:
            _closed.remove(gen)
        except ValueError:
            pass


def live_count() -> int:
    """Journal files this process keeps (the current one included)."""
    return len(_closed) + (_current is not None)


# --- Replay of dead processes' journals (gateway processes, from buffer.replay_spool) ---


def claimable(directory: str) -> list[str]:
    """Journals whose process is gone, oldest first: dead pids' files, this pid's `.lost` files (a
    replay that failed), and this pid's journals from before this process started (a reused pid).
    Runs in a thread: it reads no state of the journal being written, only names and pids."""
    me = os.getpid()
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = NAME.match(name)
        if not match:
            continue
        pid, ns, kind = int(match.group(1)), int(match.group(2)), match.group(3)
        if pid == me:
            if kind == "journal" and ns >= _BORN:
                continue  # this process's own
        elif alive(pid):
            continue
        found.append((ns, os.path.join(directory, name)))
    return [path for _, path in sorted(found)]


def claim(path: str) -> str | None:
    """Take a dead journal (atomic rename to `.lost` under this pid); None if another process took it."""
    directory, name = os.path.split(path)
    match = NAME.match(name)
    claimed = os.path.join(directory, f"starts-{os.getpid()}-{match.group(2)}.lost")
    if claimed == path:
        return path
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return None
    return claimed


def lost_records(path: str, limit: int = 100_000) -> list[dict]:
    """The worker_lost records of a claimed journal (at most `limit`; a torn or foreign line is skipped)."""
    records = []
    with open(path, "rb") as f:
        for line in f:
            if len(records) >= limit:
                log.error("usage journal %s holds more than %d starts; the rest are dropped", path, limit)
                break
            if len(line) > MAX_LINE:
                continue
            try:
                values = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # the last line of a journal cut mid-write
            if isinstance(values, list) and len(values) == len(START_FIELDS):
                records.append(lost_record(values))
    return records


def lost_record(values: list) -> dict:
    """A start line as the row of an attempt whose process died: prompt tokens as estimated at
    the start, no completion (what was streamed died with the process), marked estimated."""
    record = dict(zip(START_FIELDS, values, strict=True))
    record.update(status="worker_lost", estimated=True, completion_tokens=0, http_status=0, error_type="worker_lost")
    return record
