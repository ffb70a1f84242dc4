"""The client-library matrix runs offline: the socket guard (cells.py) is on for every test here, and a
test fails when anything (a library, a tokenizer, a telemetry exporter) tried to leave loopback."""

import os

import pytest

from .cells import TELEMETRY_OFF, VIOLATIONS, install_socket_guard

os.environ.update(TELEMETRY_OFF)


@pytest.fixture(autouse=True)
def socket_guard():
    VIOLATIONS.clear()
    uninstall = install_socket_guard()
    yield
    uninstall()
    assert not VIOLATIONS, f"a non-loopback connection was attempted: {VIOLATIONS}"
