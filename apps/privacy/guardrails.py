"""The guardrail pipeline: checks around a chat request, configured per key, organisation and routing rule.

A request whose key (with its organisation) and matched rule set no policy never gets here: the gateway
checks `key.policies or plan.policies` (two attribute reads) and goes on. Otherwise `Guard` runs the
stages in order, at three points:

- before any attempt (`Stage.before`, async): may refuse the request with an ApiError;
- per attempt (`Stage.upstream`): the body this target is sent — decided per attempt because a fallback
  may cross a jurisdiction (a rule's pd_jurisdiction);
- on the answer (`Stage.answer` → an `AnswerFilter`): every streamed piece of text and of tool-call
  arguments, flushed at the end of each, or the whole answer; and `Stage.after` once it is complete.

Stages, in order: personal data (PersonalDataStage) first, so a later stage's `upstream` sees what the
provider sees and its answer filter reads the restored text; the term blocklist (BlocklistStage, on the
text as the client sent it); the prompt log (PromptLogStage, when XROUTER_LOG_PROMPTS is on).
A moderation or prompt-injection model behind an OpenAI-compatible endpoint joins as one more Stage
whose async `before` posts the messages (through `pseudonym.mask` first unless that service is inside the
company) to its /v1/moderations or chat endpoint and raises ApiError(400, code="content_policy_violation")
when it flags them — the relay is untouched.
"""

import asyncio

from django.conf import settings

from apps.common.errors import ApiError
from apps.common.personal_data import RANK, strictest

from . import metrics
from .pseudonym import Pseudonyms, Restore, taken_in


def message_texts(body: dict):
    """Every text of the conversation the provider would read: contents, text parts, tool-call arguments."""
    for message in body.get("messages", ()):
        content = message.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part["text"]
        for call in message.get("tool_calls") or ():
            arguments = (call.get("function") or {}).get("arguments")
            if isinstance(arguments, str):
                yield arguments
        call = message.get("function_call")
        if isinstance(call, dict) and isinstance(call.get("arguments"), str):
            yield call["arguments"]


def as_messages(inputs: list[str]) -> dict:
    """Embedding inputs as the pipeline reads them (a user message each): the same policies apply to them."""
    return {"messages": [{"role": "user", "content": text} for text in inputs]}


def rewrite_messages(body: dict, rewrite) -> dict:
    """A copy of `body` whose message texts went through `rewrite` (the original stays for other attempts)."""
    messages = []
    for message in body.get("messages", ()):
        message = dict(message)
        content = message.get("content")
        if isinstance(content, str):
            message["content"] = rewrite(content)
        elif isinstance(content, list):
            message["content"] = [{**p, "text": rewrite(p["text"])} if isinstance(p, dict) and isinstance(p.get("text"), str)
                                  else p for p in content]
        if message.get("tool_calls"):
            message["tool_calls"] = [_rewrite_call(c, rewrite) for c in message["tool_calls"]]
        if isinstance(message.get("function_call"), dict):
            message["function_call"] = _rewrite_function(message["function_call"], rewrite)
        messages.append(message)
    return {**body, "messages": messages}


def _rewrite_function(function: dict, rewrite) -> dict:
    arguments = function.get("arguments")
    return {**function, "arguments": rewrite(arguments)} if isinstance(arguments, str) else function


def _rewrite_call(call, rewrite):
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return call
    return {**call, "function": _rewrite_function(call["function"], rewrite)}


INLINE_CHARS = 8_000  # a prompt up to this size is rewritten on the event loop (well under a millisecond)


class AnswerFilter:
    """Rewrites one attempt's answer. `slot` names one string of it: ("content", choice) or
    ("args", choice, tool call index). Streams call `piece` per delta and `flush` at the string's end."""

    def piece(self, slot: tuple, text: str) -> str:
        return text

    def flush(self, slot: tuple) -> str:
        return ""

    def whole(self, slot: tuple, text: str) -> str:
        return text

    def slots(self) -> list[tuple]:
        """The streamed strings that may still hold text back (flushed at their choice's finish)."""
        return []

    def end(self) -> None:
        """The attempt's answer is over (counters, metrics)."""


class Stage:
    """One check. Every hook is optional; see the module docstring for when each runs."""

    async def before(self, guard: "Guard") -> None:
        return None

    def upstream(self, guard: "Guard", body: dict, target) -> dict:
        return body

    def answer(self, guard: "Guard", target) -> AnswerFilter | None:
        return None

    def after(self, guard: "Guard", target, answer: str) -> None:
        return None


class PersonalDataStage(Stage):
    """Pseudonymize or redact before the provider reads the prompt, per attempt; restore in the answer."""

    def upstream(self, guard, body, target):
        mode, names = guard.mode_for(target)
        if RANK[mode] < RANK["pseudonymize"]:
            return body
        if guard.pseudonyms is None or (names and not guard.pseudonyms.names):
            # One set of placeholders per request: every attempt (and every message) numbers alike.
            guard.pseudonyms = Pseudonyms(names, taken_in(message_texts(body)))
            guard.anonymized = None
        if guard.anonymized is None:
            guard.anonymized = rewrite_messages(body, guard.pseudonyms.replace)
        return guard.anonymized

    def answer(self, guard, target):
        mode, _ = guard.mode_for(target)
        if mode != "pseudonymize" or guard.pseudonyms is None or not guard.pseudonyms.originals:
            return None
        return _RestoreFilter(Restore(guard.pseudonyms.originals), target.model.provider)


class _RestoreFilter(AnswerFilter):
    def __init__(self, restore: Restore, provider: str):
        self.restore = restore
        self.provider = provider
        self.streams: dict[tuple, object] = {}

    def piece(self, slot, text):
        restorer = self.streams.get(slot)
        if restorer is None:
            restorer = self.streams[slot] = self.restore.restorer(in_json=slot[0] == "args")
        return restorer.feed(text)

    def flush(self, slot):
        restorer = self.streams.pop(slot, None)
        return restorer.flush() if restorer is not None else ""

    def whole(self, slot, text):
        return self.restore.text(text, in_json=slot[0] == "args")

    def slots(self):
        return list(self.streams)

    def end(self):
        if self.restore.unrestored:
            metrics.UNRESTORED.labels(self.provider).inc(self.restore.unrestored)
            self.restore.unrestored = 0


class BlocklistStage(Stage):
    """Refuse, before any call, a request whose messages contain a blocked term (case-insensitive)."""

    async def before(self, guard):
        terms = {t for p in guard.policies for t in p.terms}
        if not terms:
            return
        for text in message_texts(guard.body):
            folded = text.casefold()
            if any(term in folded for term in terms):
                metrics.REFUSALS.labels("blocklist").inc()
                raise ApiError(400, "The request contains a term this API key's policy does not allow.",
                               param="messages", code="content_policy_violation")


class PromptLogStage(Stage):
    """Queue the prompt and the answer for the prompt log (masked off the request path: prompt_log.py)."""

    def after(self, guard, target, answer):
        from . import prompt_log

        prompt = "\n".join(message_texts(guard.body))
        prompt_log.record(guard.request_id, guard.key, target.model.public_id, prompt, answer, guard.names)


PERSONAL_DATA, BLOCKLIST, PROMPT_LOG = PersonalDataStage(), BlocklistStage(), PromptLogStage()


class Guard:
    """One request's pipeline: the policies that apply to it and the stages they call for."""

    def __init__(self, key, plan, body: dict, request_id: str):
        self.key, self.body, self.request_id = key, body, request_id
        self.policies = key.policies + plan.policies
        self.size = sum(map(len, message_texts(body)))
        self.pseudonyms: Pseudonyms | None = None
        self.anonymized: dict | None = None
        top = max((RANK[p.mode] for p in self.policies), default=0)
        self.names = any(p.names and p.mode != "off" for p in self.policies)
        self.stages = [PERSONAL_DATA] if top >= RANK["pseudonymize"] else []
        if any(p.terms for p in self.policies):
            self.stages.append(BLOCKLIST)
        if top >= RANK["mask"] and settings.XROUTER["LOG_PROMPTS"]:
            self.stages.append(PROMPT_LOG)
        # Answers carrying placeholders or restored personal data stay out of the shared response cache.
        self.cacheable = top < RANK["pseudonymize"]

    def mode_for(self, target) -> tuple[str, bool]:
        return strictest(self.policies, target.model.jurisdiction)

    async def before(self) -> None:
        for stage in self.stages:
            await stage.before(self)

    def upstream(self, target) -> dict:
        """The body this attempt sends `target`."""
        body = self.body
        for stage in self.stages:
            body = stage.upstream(self, body, target)
        return body

    async def aupstream(self, target) -> dict:
        """`upstream` for the event loop: a large prompt is rewritten in a worker thread, so the loop keeps
        relaying other requests' streams between the detectors' turns (the GIL is shared, the loop's turns
        are not; detection costs milliseconds per 1,000 characters)."""
        if self.size <= INLINE_CHARS:
            return self.upstream(target)
        return await asyncio.to_thread(self.upstream, target)

    def answer(self, target) -> AnswerFilter | None:
        filters = [f for f in (s.answer(self, target) for s in self.stages) if f is not None]
        if not filters:
            return None
        return filters[0] if len(filters) == 1 else _Chain(filters)

    def after(self, target, answer: str) -> None:
        for stage in self.stages:
            stage.after(self, target, answer)

    def restore_choices(self, choices: list[dict], answer: AnswerFilter) -> None:
        """A whole (non-streamed) answer's choices, rewritten in place."""
        for choice in choices:
            message, index = choice.get("message") or {}, choice.get("index", 0)
            if isinstance(message.get("content"), str):
                message["content"] = answer.whole(("content", index), message["content"])
            for n, call in enumerate(message.get("tool_calls") or ()):
                function = call.get("function") or {}
                if isinstance(function.get("arguments"), str):
                    function["arguments"] = answer.whole(("args", index, n), function["arguments"])
        answer.end()


def guard_for(key, plan, body: dict, request_id: str) -> Guard | None:
    """The request's pipeline, or None when its policies call for no stage."""
    guard = Guard(key, plan, body, request_id)
    return guard if guard.stages else None


class _Chain(AnswerFilter):
    """Several stages' filters, each reading what the one before it let through."""

    def __init__(self, filters):
        self.filters = filters

    def piece(self, slot, text):
        for f in self.filters:
            text = f.piece(slot, text)
        return text

    def flush(self, slot):
        text = ""
        for f in self.filters:
            text = f.piece(slot, text) + f.flush(slot) if text else f.flush(slot)
        return text

    def whole(self, slot, text):
        for f in self.filters:
            text = f.whole(slot, text)
        return text

    def slots(self):
        return list(dict.fromkeys(s for f in self.filters for s in f.slots()))

    def end(self):
        for f in self.filters:
            f.end()
