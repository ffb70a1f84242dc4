"""Fast tests of the usage path's decisions, without a server: which records a failing batch
sets aside, and the writer's supervision."""

import sys
import time

import pytest

from apps.usage.deadletter import isolate
from xrouter_project.server import WriterSupervisor


class Refusing:
    """A store that refuses any batch holding a record marked bad (as PostgreSQL refuses a whole COPY)."""

    def __init__(self, down=False):
        self.down = down
        self.stored: list[dict] = []
        self.calls = 0

    def __call__(self, records):
        self.calls += 1
        if self.down:
            raise ConnectionError("database unreachable")
        if any(r.get("bad") for r in records):
            raise ValueError("value too long for type character varying(128)")
        self.stored += records


def test_bisection_sets_aside_each_refused_record_and_stores_the_rest():
    records = [{"id": i, "bad": i in (3, 17, 18)} for i in range(40)]
    store = Refusing()
    dead = isolate(store, records)
    assert [r["id"] for r, _ in dead] == [3, 17, 18]
    assert all("too long" in error for _, error in dead)
    assert sorted(r["id"] for r in store.stored) == [i for i in range(40) if i not in (3, 17, 18)]
    assert store.calls < 40  # a few probes per refused record, not one insert per record


def test_a_store_that_is_down_sets_nothing_aside():
    with pytest.raises(ConnectionError):
        isolate(Refusing(down=True), [{"id": 1}, {"id": 2}])


def test_a_transient_failure_is_raised_without_bisecting():
    store = Refusing(down=True)
    with pytest.raises(ConnectionError):
        isolate(store, [{"id": i} for i in range(8)], (ConnectionError,))
    assert store.calls == 1


def test_the_supervisor_restarts_a_writer_that_exits_and_stops_for_good():
    supervisor = WriterSupervisor([sys.executable, "-c", "raise SystemExit(3)"], env={})
    supervisor.start()
    deadline = time.monotonic() + 15
    while supervisor.restarts < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert supervisor.restarts >= 2  # 1 s, then 2 s apart
    supervisor.stop()
    supervisor.join(5)
    assert not supervisor.is_alive()


def test_no_worker_is_forked_while_the_writer_thread_is_inside_popen():
    """A worker forked meanwhile inherited Popen's exec-status pipe: the supervisor thread then waited on it
    for as long as the worker lived, and a writer that died was never restarted (found by the battery's
    quick run). os.fork (what uvicorn's fork context calls) waits for the supervisor's Popen now."""
    import os
    import threading

    from xrouter_project import server

    released = []

    def inside_popen():
        with server._spawning:
            time.sleep(0.5)
            released.append(time.monotonic())

    thread = threading.Thread(target=inside_popen)
    thread.start()
    time.sleep(0.1)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    forked = time.monotonic()
    os.waitpid(pid, 0)
    thread.join()
    assert released and forked >= released[0]
