"""Deterministic "model" behaviour shared by every emulator, so gateway tests can assert on it.

Rules (identical for all four providers):

* Answer text is ``"Echo: " + <text of the last user message>``. If that message contains
  ``[long]`` the answer is ``LONG_ANSWER`` instead (exactly 120 words, for streaming tests);
  ``[long:N]`` makes it N words of the same vocabulary (N ≤ ``MAX_LONG_WORDS``: multi-megabyte
  streams, e.g. for back-pressure tests).
* If the last message is a tool/function result, the answer is
  ``"Tool result: " + <result contents joined with "; ">``.
* Tool calls: when functions are offered, the choice is not "none" and the last message is from
  the user, the model calls the forced function (or the first offered one) with arguments
  synthesised from its JSON-schema ``parameters`` (see ``synthesize``). One call per turn.
* Structured output: ``json_object`` mode answers ``{"answer": <answer text>}``; a JSON schema is
  answered with ``synthesize(schema)``.
* Reasoning (models that think): the hidden/separate reasoning is
  ``"Thinking about: " + <last user text>``; its tokens count as completion tokens and are spent
  before the answer, so a small ``max_tokens`` can leave the answer empty (``length``).
* Tokens: a "token" is a whitespace-separated word (with its trailing whitespace). Prompt tokens
  are ``sum(words(message text) + 1 for each message)``; completion tokens are the words of the
  reasoning plus the answer (for a tool call: the words of the JSON arguments + 1).
* ``stop`` strings cut the answer before the first match; ``max_tokens`` truncates it
  (finish reason ``length``).
* Streams split the text into chunks of ``words_per_chunk`` words (3 unless a provider says
  otherwise); concatenating the chunks gives the full text back.
* Embeddings are pseudo-random vectors seeded by a SHA-256 of the text: same text, same vector.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass, field
from typing import Any

LONG_MARKER = "[long]"
LONG_N = re.compile(r"\[long:(\d{1,7})\]")
MAX_LONG_WORDS = 1_000_000
BLOCKED_MARKER = "[blocked]"
REFUSAL = "Не люблю менять тему разговора, но вот сейчас тот самый случай."
_VOCAB = (
    "the quick brown fox jumps over a lazy dog while streaming tokens arrive one chunk at a time so the gateway can relay them"
).split()


def long_answer(words: int) -> str:
    return " ".join(_VOCAB[i % len(_VOCAB)] for i in range(words))


LONG_ANSWER = long_answer(120)

_PIECE = re.compile(r"\S+\s*")


def pieces(text: str) -> list[str]:
    """Split text into word "tokens" that keep their trailing whitespace (they join back exactly)."""
    return _PIECE.findall(text or "")


def count_tokens(text: str) -> int:
    return len(pieces(text))


def message_tokens(texts: list[str]) -> int:
    """Prompt tokens for a list of message texts: words + 1 per message."""
    return sum(count_tokens(t) + 1 for t in texts)


def answer_text(last_user_text: str) -> str:
    sized = LONG_N.search(last_user_text)
    if sized:
        return long_answer(min(int(sized.group(1)), MAX_LONG_WORDS))
    if LONG_MARKER in last_user_text:
        return LONG_ANSWER
    return "Echo: " + last_user_text


def tool_result_text(results: list[str]) -> str:
    return "Tool result: " + "; ".join(results)


def reasoning_text(last_user_text: str) -> str:
    return "Thinking about: " + last_user_text


def chunk_text(text: str, words_per_chunk: int = 3) -> list[str]:
    words = pieces(text)
    return ["".join(words[i : i + words_per_chunk]) for i in range(0, len(words), words_per_chunk)]


SYNTHESIZED_NODES = 10_000  # a schema's values filled in at most (a small schema of many self-references is huge)


def synthesize(schema: Any, depth: int = 0, defs: dict | None = None, budget: list | None = None) -> Any:
    """A value that satisfies a (simple) JSON schema: string→"Moscow" or the first enum value,
    integer→3, number→1.5, boolean→true, array→[], object→every property filled recursively.
    A local ``$ref`` (``#/$defs/X``, ``#/definitions/X``: pydantic's nested models) is followed, as a
    model answering to the schema would; the depth bound also ends recursive references, and at most
    SYNTHESIZED_NODES values are filled in (the rest are left empty)."""
    if budget is None:
        budget = [SYNTHESIZED_NODES]
    budget[0] -= 1
    if not isinstance(schema, dict) or depth > 8 or budget[0] < 0:
        return {}
    if defs is None:
        defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})} if depth == 0 else {}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        for prefix in ("#/$defs/", "#/definitions/"):
            if ref.startswith(prefix) and isinstance(defs.get(ref[len(prefix):]), dict):
                return synthesize(defs[ref[len(prefix):]], depth + 1, defs, budget)
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return synthesize(schema[combinator][0], depth + 1, defs, budget)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "string":
        return "Moscow"
    if kind == "integer":
        return 3
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "null":
        return None
    properties = schema.get("properties") or {}
    names = list(schema.get("required") or []) + [n for n in properties if n not in (schema.get("required") or [])]
    value = {}
    for name in names:
        if budget[0] < 0:
            break
        value[name] = synthesize(properties.get(name, {}), depth + 1, defs, budget)
    return value


def embedding_vector(text: str, dim: int, normalize: bool = False) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    rng = random.Random(seed)  # nosec B311 # deterministic fake vectors, no secret
    vector = [rng.uniform(-1.5, 1.5) for _ in range(dim)]
    if normalize:
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        vector = [v / norm for v in vector]
    return [round(v, 6) for v in vector]


@dataclass
class Conversation:
    """A provider request reduced to what the deterministic model looks at."""

    last_user_text: str = ""
    last_is_user: bool = True
    tool_results: list[str] | None = None  # set when the last message is a tool/function result
    functions: list[dict] = field(default_factory=list)  # [{"name", "parameters"}]
    tool_choice: str = "auto"  # "auto" | "none" | "required"
    forced_function: str | None = None
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    response_format: dict | None = None  # {"type": "json_object"} | {"type": "json_schema", "schema": ...}
    think: bool = False


@dataclass
class Reply:
    text: str = ""
    reasoning: str = ""
    tool_name: str | None = None
    tool_args: dict | None = None
    finish_reason: str = "stop"  # "stop" | "length" | "tool_calls"
    reasoning_tokens: int = 0
    completion_tokens: int = 0

    @property
    def is_tool_call(self) -> bool:
        return self.tool_name is not None


def decide_reply(conv: Conversation) -> Reply:
    """Apply the module-docstring rules to one conversation."""
    reasoning = reasoning_text(conv.last_user_text) if conv.think else ""
    if conv.tool_results is None and _should_call(conv):
        name = conv.forced_function or conv.functions[0]["name"]
        spec = next((f for f in conv.functions if f["name"] == name), {"parameters": {}})
        args = synthesize(spec.get("parameters") or {"type": "object"})
        if not isinstance(args, dict):
            args = {}
        reasoning_tokens = count_tokens(reasoning)
        tool_tokens = count_tokens(json.dumps(args, ensure_ascii=False)) + 1
        return Reply(
            reasoning=reasoning,
            tool_name=name,
            tool_args=args,
            finish_reason="tool_calls",
            reasoning_tokens=reasoning_tokens,
            completion_tokens=reasoning_tokens + tool_tokens,
        )

    if conv.tool_results is None and BLOCKED_MARKER in conv.last_user_text:
        # The provider's content filter: a canned refusal (GigaChat "blacklist", Yandex CONTENT_FILTER).
        return Reply(text=REFUSAL, finish_reason="content_filter", completion_tokens=count_tokens(REFUSAL))
    if conv.tool_results is not None:
        text = tool_result_text(conv.tool_results)
    else:
        text = answer_text(conv.last_user_text)
    text = _apply_format(text, conv.response_format)
    for stop in conv.stop:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return _within_budget(reasoning, text, conv.max_tokens)


def _should_call(conv: Conversation) -> bool:
    if not conv.functions or conv.tool_choice == "none":
        return False
    return conv.last_is_user or conv.tool_choice == "required"


def _apply_format(text: str, response_format: dict | None) -> str:
    if not response_format:
        return text
    if response_format.get("type") == "json_schema":
        return json.dumps(synthesize(response_format.get("schema") or {}), ensure_ascii=False)
    return json.dumps({"answer": text}, ensure_ascii=False)


def _within_budget(reasoning: str, text: str, max_tokens: int | None) -> Reply:
    thought, words = pieces(reasoning), pieces(text)
    finish = "stop"
    if max_tokens is not None and len(thought) + len(words) > max_tokens:
        finish = "length"
        thought = thought[:max_tokens]
        words = words[: max(0, max_tokens - len(thought))]
    return Reply(
        text="".join(words).rstrip() if finish == "length" else text,
        reasoning="".join(thought).rstrip() if finish == "length" else reasoning,
        finish_reason=finish,
        reasoning_tokens=len(thought),
        completion_tokens=len(thought) + len(words),
    )
