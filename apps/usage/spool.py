"""The disk spool: usage batches Redis could not take, kept until it can.

One file per batch per process (`usage-<pid>-<ns>.batch`: one stream entry payload per line),
written atomically (temporary file, fsync, rename), bounded by XROUTER_SPOOL_MAX_MB. Gateway
processes replay their own files and those of dead processes (a pid that no longer runs) into
the Redis stream; a file is claimed by renaming it to `usage-<claimer pid>-<ns>.replay` first,
so two processes never replay the same one. A file replayed twice (a crash between XADD and
unlink) is harmless: the writer skips (request id, attempt, created_at) keys it already stored.
The writer reads only Redis. Start-record journals (apps/usage/journal.py) share the directory.
"""

import itertools
import logging
import os
import re
import time

from apps.common.processes import alive

from .metrics import SPOOLED

log = logging.getLogger(__name__)
_sequence = itertools.count()
NAME = re.compile(r"^usage-(\d+)-(\d+)\.(batch|replay|tmp)$")


class SpoolFull(Exception):
    """The spool holds XROUTER_SPOOL_MAX_MB already: the batch stays in memory for the next try."""


def _size(directory: str) -> int:
    total = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if NAME.match(entry.name):
                try:
                    total += entry.stat().st_size
                except FileNotFoundError:
                    pass
    return total


def write(directory: str, max_bytes: int, payloads: list[bytes]) -> str:
    """Store one batch (its stream entry payloads) durably; returns the file's path."""
    os.makedirs(directory, exist_ok=True)
    data = b"\n".join(payloads) + b"\n"
    if _size(directory) + len(data) > max_bytes:
        raise SpoolFull(f"usage spool {directory} is full ({max_bytes // 2**20} MiB)")
    stem = f"usage-{os.getpid()}-{time.time_ns()}{next(_sequence) % 1000:03d}"  # ordered, unique per process
    tmp, final = os.path.join(directory, stem + ".tmp"), os.path.join(directory, stem + ".batch")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, final)
    _fsync_dir(directory)
    SPOOLED.inc()
    return final


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def claimable(directory: str) -> list[str]:
    """Spool files this process may replay: its own and dead processes' (oldest first). Leftover
    temporary files of dead processes (a crash mid-write) are removed."""
    me, found = os.getpid(), []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    for name in names:
        match = NAME.match(name)
        if not match:
            continue
        pid, kind = int(match.group(1)), match.group(3)
        if pid != me and alive(pid):
            continue
        if kind == "tmp":
            if pid != me:
                _unlink(os.path.join(directory, name))
            continue
        found.append((int(match.group(2)), name))
    return [os.path.join(directory, name) for _, name in sorted(found)]


def claim(path: str) -> str | None:
    """Take a spool file for replay (atomic rename); None if another process took it first."""
    directory, name = os.path.split(path)
    match = NAME.match(name)
    claimed = os.path.join(directory, f"usage-{os.getpid()}-{match.group(2)}.replay")
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return None
    return claimed


def read(path: str) -> list[bytes]:
    with open(path, "rb") as f:
        return [line for line in f.read().split(b"\n") if line]


def release(path: str) -> None:
    """A replay failed: give the file back to this process's spool (replayed later)."""
    directory, name = os.path.split(path)
    os.rename(path, os.path.join(directory, name.rsplit(".", 1)[0] + ".batch"))


def done(path: str) -> None:
    _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def count(directory: str) -> int:
    try:
        return sum(1 for name in os.listdir(directory) if name.endswith((".batch", ".replay")) and NAME.match(name))
    except FileNotFoundError:
        return 0
