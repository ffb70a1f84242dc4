"""Fault injection: a queue of faults that the next matching requests suffer.

``POST /_emulator/faults`` takes one fault object, a list of them, or ``{"faults": [...]}``.
Fields (all optional):

* ``status`` (int): answer with this HTTP status in the provider's own error shape;
  ``body`` replaces that body verbatim, ``message`` only its text; ``retry_after`` (seconds)
  adds a ``Retry-After`` header.
* ``latency_ms``: wait before anything is sent (time to response headers).
* ``first_byte_delay_ms``: send the headers, then wait before the first body byte.
* ``chunk_delay_ms``: wait between stream chunks.
* ``cut_after_chunks`` (N): send N stream chunks, then close the connection without finishing
  the body (for a non-stream answer: half of the JSON body).
* ``malformed_chunk_at`` (N, 0-based): stream chunk N is replaced by a truncated JSON fragment
  (for a non-stream answer: the body is truncated JSON with status 200).
* ``revise_at_chunk`` (N, YandexGPT streams only): from chunk N on the cumulative text no longer
  extends the earlier text (it gains a ``"(revised) "`` prefix).
* ``usage`` (object, GigaChat and the OpenAI dialects): fields merged into the answer's usage
  object as sent, e.g. ``{"prompt_tokens": "n/a"}``: a successful answer whose counts do not parse.
* ``chunk_chars`` (N, the OpenAI dialects: MTS, T-Bank, openai_compatible): streamed answer text and
  tool-call arguments are cut every N characters instead of every 3 words (arguments: in halves); 1 puts
  a chunk boundary at every character (the gateway's placeholder restoration is tested on it).
* ``no_usage`` (bool, the OpenAI dialects): a successful answer without its usage: a stream's final
  chunk carries no ``usage`` although ``stream_options.include_usage`` asked for it; a JSON answer
  has no ``usage`` object.
* ``reset`` (bool): close the connection without sending any response.
* ``count`` (K): the fault fires for the next K matching requests. Default 1, or unlimited
  (until ``DELETE /_emulator/faults``) when ``share`` is given without ``count``.
* ``share`` (0..1): the fault fires on this share of matching requests. Deterministic, not random:
  with 0.5 every second matching request is hit.
* ``path``: only requests to this path (a trailing ``*`` makes it a prefix). Without ``path`` a
  fault matches every API path except the token endpoints (OAuth / IAM / ``/token``), so a fault
  meant for chat is not eaten by a token refresh; name a token path explicitly to fault it.
* ``model``: only requests for this model (YandexGPT: the full ``modelUri`` or the model name).
* ``request_id`` (str): answer normally, but with this request id (header and ledger) instead of a
  fresh one: a provider whose ids do not fit the gateway's columns.

Faults are checked in the order they were queued; the first one that fires wins.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields

_INT_FIELDS = (
    "status",
    "retry_after",
    "latency_ms",
    "first_byte_delay_ms",
    "chunk_delay_ms",
    "cut_after_chunks",
    "malformed_chunk_at",
    "revise_at_chunk",
    "chunk_chars",
    "count",
)


@dataclass
class Fault:
    status: int | None = None
    body: object = None
    message: str | None = None
    retry_after: int | None = None
    latency_ms: int = 0
    first_byte_delay_ms: int = 0
    chunk_delay_ms: int = 0
    cut_after_chunks: int | None = None
    malformed_chunk_at: int | None = None
    revise_at_chunk: int | None = None
    chunk_chars: int | None = None
    usage: dict | None = None
    no_usage: bool = False
    reset: bool = False
    count: int | None = None
    share: float | None = None
    path: str | None = None
    model: str | None = None
    request_id: str | None = None
    fired: int = 0
    _credit: float = 0.0

    @classmethod
    def from_json(cls, data: object) -> Fault:
        if not isinstance(data, dict):
            raise ValueError("a fault must be a JSON object")
        known = {f.name for f in fields(cls) if not f.name.startswith("_") and f.name != "fired"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        for name in _INT_FIELDS:
            value = data.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer")
        if data.get("status") is not None and not 100 <= data["status"] <= 599:
            raise ValueError("status must be an HTTP status code")
        if data.get("usage") is not None and not isinstance(data["usage"], dict):
            raise ValueError("usage must be an object")
        if data.get("request_id") is not None and not isinstance(data["request_id"], str):
            raise ValueError("request_id must be a string")
        share = data.get("share")
        if share is not None and (not isinstance(share, (int, float)) or not 0 < share <= 1):
            raise ValueError("share must be in (0, 1]")
        fault = cls(**data)
        if fault.count is None and fault.share is None:
            fault.count = 1
        return fault

    def to_json(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if not k.startswith("_") and v not in (None, False, 0)}
        data["fired"] = self.fired
        return data

    def matches(self, path: str, model: str | None, is_token_path: bool) -> bool:
        if self.path is None:
            if is_token_path:
                return False
        elif self.path.endswith("*"):
            if not path.startswith(self.path[:-1]):
                return False
        elif path != self.path:
            return False
        if self.model is not None:
            if model is None:
                return False
            if self.model not in (model, _model_name(model)):
                return False
        return True

    def roll(self) -> bool:
        """Decide whether this matching request is hit (deterministic for ``share``)."""
        if self.share is not None:
            self._credit += self.share
            if self._credit < 1 - 1e-9:
                return False
            self._credit -= 1
        self.fired += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    @property
    def kind(self) -> str:
        """A short label for the ledger."""
        for name in ("reset", "status", "cut_after_chunks", "malformed_chunk_at", "revise_at_chunk", "usage", "no_usage",
                     "request_id"):
            if getattr(self, name) not in (None, False):
                return name
        return "delay"


def _model_name(model: str) -> str | None:
    """ "yandexgpt" for "gpt://<folder>/yandexgpt/latest", so a fault can name the bare model."""
    parts = model.split("/")
    return parts[3] if "://" in model and len(parts) > 3 else None


class FaultQueue:
    # A lock, because tests may poke the queue from another thread than the server's loop.
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> int:
        with self._lock:
            n = len(self._faults)
            self._faults.clear()
            return n

    def pending(self) -> list[dict]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def take(self, path: str, model: str | None, is_token_path: bool) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(path, model, is_token_path) and fault.roll():
                    if fault.exhausted:
                        self._faults.remove(fault)
                    return fault
        return None
