"""Fast tests of the usage path's decisions, without a server: which records a failing batch
sets aside, and the writer's supervision."""

import signal
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


@pytest.mark.timeout(60, method="thread")  # the supervisor's backoff timer is SIGALRM, pytest-timeout's default too
def test_the_supervisor_restarts_a_writer_that_exits_and_stops_for_good():
    before = signal.getsignal(signal.SIGCHLD), signal.getsignal(signal.SIGALRM)
    supervisor = WriterSupervisor([sys.executable, "-c", "raise SystemExit(3)"], env={})
    supervisor.start()
    try:
        deadline = time.monotonic() + 15
        while supervisor.restarts < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # the handlers run here, in this (the main) thread
        assert supervisor.restarts >= 2  # 1 s, then 2 s apart
    finally:
        supervisor.stop()
    restarts = supervisor.restarts
    time.sleep(1.5)
    assert supervisor.restarts == restarts and supervisor.process is None  # stopped for good
    assert (signal.getsignal(signal.SIGCHLD), signal.getsignal(signal.SIGALRM)) == before


@pytest.mark.timeout(60, method="thread")
def test_a_writer_that_cannot_start_is_retried_and_nothing_is_raised():
    supervisor = WriterSupervisor(["/nonexistent/python"], env={})
    supervisor.start()  # FileNotFoundError inside: retried on the backoff, never raised
    try:
        deadline = time.monotonic() + 10
        while supervisor.restarts < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert supervisor.restarts >= 1 and supervisor.process is None
        supervisor.argv = [sys.executable, "-c", "import time; time.sleep(30)"]  # the deploy finished
        deadline = time.monotonic() + 10
        while supervisor.process is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert supervisor.process is not None and supervisor.process.poll() is None
    finally:
        supervisor.stop()
