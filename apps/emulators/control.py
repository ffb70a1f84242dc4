"""A small synchronous client for an emulator's control API, for tests and scripts::

control = EmulatorControl(emulators["gigachat"].origin)
control.add_fault(status=429, retry_after=2, path="/api/v1/chat/completions")
assert control.ledger()[-1]["status"] == 429
"""

from __future__ import annotations

import httpx


class EmulatorControl:
    def __init__(self, origin: str, client: httpx.Client | None = None, verify=True) -> None:
        # Pass a shared client when making many of these: building one costs an SSL context.
        self._base = origin.rstrip("/") + "/_emulator"
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=10, verify=verify)

    def _call(self, method: str, path: str, payload=None):
        response = self._client.request(method, self._base + path, json=payload)
        response.raise_for_status()
        return response.json()

    def health(self) -> dict:
        return self._call("GET", "/health")

    def add_fault(self, **fault) -> dict:
        return self._call("POST", "/faults", fault)["queued"][0]

    def add_faults(self, *faults: dict) -> list[dict]:
        return self._call("POST", "/faults", list(faults))["queued"]

    def faults(self) -> list[dict]:
        return self._call("GET", "/faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def ledger(self) -> list[dict]:
        return self._call("GET", "/ledger")["entries"]

    def clear_ledger(self) -> None:
        self._call("DELETE", "/ledger")

    def config(self) -> dict:
        return self._call("GET", "/config")

    def configure(self, **settings) -> dict:
        return self._call("POST", "/config", settings)

    def reset(self) -> None:
        self._call("POST", "/reset")

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> EmulatorControl:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
