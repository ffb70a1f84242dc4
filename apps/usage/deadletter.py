"""Records the database refuses on their own: found by bisection, set aside, replayable.

One bad record (a value no column holds) used to fail its whole batch forever, and with it the
billing of everyone. Now a failing batch is split until the records the database refuses alone
are found; the others land, the refused ones go to the dead letter (the Redis stream
`<usage stream>:dead`, or without Redis a JSON-lines file under XROUTER_SPOOL_DIR/dead) with an
ERROR log line and `xrouter_usage_dead_letter_total`. `manage.py usage_dead_letter --list /
--replay` shows and re-inserts them once the cause is fixed.

Stream entries without a valid signature (apps/common/signing.py: written by something that lacks
XROUTER_BUS_HMAC_KEYS) go there too, unsigned and never replayed: nothing is lost silently and nothing
forged is billed. The writer signs the entries it dead-letters itself, so `--replay` re-inserts only
what a writer put there (`xrouter_usage_unsigned_total` counts the refused ones).

No Django at import: the lean writer uses this module too.
"""

import logging
import os
import time

import orjson

from .metrics import DEAD_LETTER, UNSIGNED

log = logging.getLogger(__name__)
ERROR_CHARS = 500


def dead_stream(stream: str) -> str:
    """`xrouter:usage` -> `xrouter:usage:dead`."""
    return f"{stream}:dead"


def total_key(stream: str) -> str:
    """A counter of every record ever dead-lettered (what the gateways report as the metric)."""
    return f"{stream}:dead:total"


def unsigned_key(stream: str) -> str:
    """A counter of every stream entry refused for its signature (`xrouter_usage_unsigned_total`)."""
    return f"{stream}:unsigned:total"


UNSIGNED_ERROR = "no valid signature: not billed, never replayed (written by something without XROUTER_BUS_HMAC_KEYS)"


def isolate(insert, records: list, transient: tuple = ()) -> list[tuple[dict, str]]:
    """Insert `records`; if the store refuses the batch, bisect to the records it refuses on their
    own and return them with the error (the others are inserted). A failure of the store itself
    (a `transient` exception, or an empty batch failing too) is raised: nothing is dead then."""
    try:
        insert(records)
        return []
    except transient:
        raise
    except Exception as exc:
        error = exc
    insert([])  # does the store work at all? If not, this raises and the caller retries later
    if len(records) == 1:
        return [(records[0], f"{type(error).__name__}: {error}"[:ERROR_CHARS])]
    middle = len(records) // 2
    return isolate(insert, records[:middle], transient) + isolate(insert, records[middle:], transient)


def _encode(record) -> bytes:
    try:
        return orjson.dumps(record, default=str)
    except TypeError:  # e.g. a lone surrogate: keep what can be kept
        return orjson.dumps({"raw": repr(record)})


def _report(dead: list[tuple[dict, str]], where: str) -> None:
    DEAD_LETTER.inc(len(dead))
    for record, error in dead:
        request_id = record.get("request_id") if isinstance(record, dict) else None
        log.error("usage record refused by the database; moved to the dead letter (%s): %s", where, error,
                  extra={"request_id": str(request_id)[:80]})


def to_stream(client, stream: str, dead: list[tuple[dict, str]], sign=None, unsigned: list[bytes] = ()) -> None:
    """Append refused records to the dead-letter stream (a sync redis client), each signed with `sign`
    (a Signer) so that a replay trusts them, and the `unsigned` stream entries' raw bytes unsigned."""
    if not dead and not unsigned:
        return
    name, now = dead_stream(stream), str(time.time())
    with client.pipeline(transaction=False) as pipe:
        for record, error in dead:
            raw = _encode(record)
            pipe.xadd(name, {"r": raw, "error": error, "at": now, **({"s": sign.sign(raw)} if sign else {})})
        for raw in unsigned:
            pipe.xadd(name, {"r": orjson.dumps({"raw": raw[:100_000].decode("utf-8", "replace")}), "error": UNSIGNED_ERROR,
                             "at": now})
        pipe.incrby(total_key(stream), len(dead) + len(unsigned))
        if unsigned:
            pipe.incrby(unsigned_key(stream), len(unsigned))
        pipe.execute()
    if dead:
        _report(dead, name)
    if unsigned:
        DEAD_LETTER.inc(len(unsigned))
        UNSIGNED.inc(len(unsigned))
        # Never the content: it is whatever the writer of the forgery chose to put in our logs.
        log.error("%d usage stream entries without a valid signature moved to the dead letter (%s), not billed",
                  len(unsigned), name)


def dead_dir(spool_dir: str) -> str:
    return os.path.join(spool_dir, "dead")


def to_file(spool_dir: str, dead: list[tuple[dict, str]]) -> None:
    """Without Redis: append refused records to this process's dead-letter file (JSON lines)."""
    if not dead:
        return
    directory = dead_dir(spool_dir)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"usage-{os.getpid()}.jsonl")
    lines = b"".join(orjson.dumps({"r": orjson.loads(_encode(record)), "error": error, "at": time.time()}) + b"\n"
                     for record, error in dead)
    with open(path, "ab") as f:
        f.write(lines)
        f.flush()
        os.fsync(f.fileno())
    _report(dead, path)
