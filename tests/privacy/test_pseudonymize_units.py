"""Placeholders and their restoration, whole and streamed: pure functions, no server."""

import itertools

import orjson
import pytest

from apps.common.personal_data import Policy
from apps.privacy.guardrails import AnswerFilter, Guard, _Chain, rewrite_messages
from apps.privacy.pseudonym import MAX_HOLD, Pseudonyms, Restore, mask, taken_in

PHONE, EMAIL = "+7 912 345-67-89", "ivan.petrov@example.ru"
PROMPT = f"Позвоните мне: {PHONE}, или пишите на {EMAIL}. Ещё раз: {PHONE}."


def pseudonyms(*texts, names=False) -> Pseudonyms:
    return Pseudonyms(names, taken_in(texts))


def test_it_replaces_each_value_by_one_stable_placeholder():
    p = pseudonyms(PROMPT)
    out = p.replace(PROMPT)
    assert PHONE not in out and EMAIL not in out
    assert out == "Позвоните мне: [PHONE_1], или пишите на [EMAIL_1]. Ещё раз: [PHONE_1]."
    assert p.replace(f"и снова {PHONE}") == "и снова [PHONE_1]"  # the same in every message


def test_it_never_issues_a_placeholder_the_request_already_contains():
    text = f"Шаблон [PHONE_1] заполните номером {PHONE}"
    p = pseudonyms(text)
    assert p.replace(text) == "Шаблон [PHONE_1] заполните номером [PHONE_2]"
    assert Restore(p.originals).text("[PHONE_1] и [PHONE_2]") == f"[PHONE_1] и {PHONE}"


def test_mask_leaves_no_personal_data():
    assert mask(PROMPT) == "Позвоните мне: [PHONE_1], или пишите на [EMAIL_1]. Ещё раз: [PHONE_1]."


def answer_and_restore():
    p = pseudonyms(PROMPT)
    answer = "Echo: " + p.replace(PROMPT)
    return answer, Restore(p.originals), "Echo: " + PROMPT


def test_a_whole_answer_is_restored():
    answer, restore, expected = answer_and_restore()
    assert restore.text(answer) == expected
    assert restore.unrestored == 0


def test_a_streamed_answer_split_at_every_position_is_restored():
    answer, restore, expected = answer_and_restore()
    for cut in range(len(answer) + 1):
        restorer = restore.restorer()
        sent = restorer.feed(answer[:cut]) + restorer.feed(answer[cut:]) + restorer.flush()
        assert sent == expected, cut
    for a, b in itertools.combinations(range(1, len(answer)), 2):  # two cuts anywhere
        restorer = restore.restorer()
        sent = restorer.feed(answer[:a]) + restorer.feed(answer[a:b]) + restorer.feed(answer[b:]) + restorer.flush()
        assert sent == expected, (a, b)


def test_a_stream_of_single_characters_is_restored_and_never_shows_half_a_placeholder():
    answer, restore, expected = answer_and_restore()
    restorer, sent = restore.restorer(), []
    for ch in answer:
        sent.append(restorer.feed(ch))
    sent.append(restorer.flush())
    assert "".join(sent) == expected
    assert not any("[PHONE" in piece or "[EMAIL" in piece for piece in sent)


def test_the_hold_back_is_bounded_by_max_hold():
    restorer = Restore({"[PHONE_1]": PHONE}).restorer()
    assert restorer.feed("[" + "A" * 15) == ""  # may still be a placeholder: held
    out = restorer.feed("A" * MAX_HOLD)  # can no longer be one: released
    assert out == "[" + "A" * (15 + MAX_HOLD)
    assert restorer.feed("text [1] and [") == "text [1] and "
    assert restorer.flush() == "["


def test_altered_placeholders_are_left_alone_and_counted():
    restore = Restore({"[PHONE_1]": PHONE, "[EMAIL_1]": EMAIL})
    text = "[phone_1], [PHONE 1], [Email_1] and [PHONE_1]; [OTHER_1] is not ours"
    assert restore.text(text) == f"[phone_1], [PHONE 1], [Email_1] and {PHONE}; [OTHER_1] is not ours"
    assert restore.unrestored == 3


def test_an_altered_placeholder_split_across_chunks_is_counted_once():
    restore = Restore({"[PHONE_1]": PHONE})
    for cut in range(1, len("x [phone_1] y")):
        restore.unrestored = 0
        restorer, text = restore.restorer(), "x [phone_1] y"
        assert restorer.feed(text[:cut]) + restorer.feed(text[cut:]) + restorer.flush() == text
        assert restore.unrestored == 1, cut


def test_tool_arguments_are_restored_json_escaped_at_every_split():
    original = 'Иван "Ваня" Петров\\'
    restore = Restore({"[PERSON_1]": original})
    arguments = orjson.dumps({"name": "[PERSON_1]", "city": "Moscow"}).decode()
    for cut in range(len(arguments) + 1):
        restorer = restore.restorer(in_json=True)
        sent = restorer.feed(arguments[:cut]) + restorer.feed(arguments[cut:]) + restorer.flush()
        assert orjson.loads(sent) == {"name": original, "city": "Moscow"}, cut


def test_rewriting_messages_covers_parts_and_tool_calls_and_keeps_the_original():
    body = {"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": f"call {PHONE}"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "dial", "arguments": orjson.dumps({"to": PHONE}).decode()}}]},
        {"role": "tool", "tool_call_id": "c1", "content": f"dialled {PHONE}"},
    ]}
    before = orjson.dumps(body)
    p = pseudonyms()
    out = rewrite_messages(body, p.replace)
    assert PHONE not in orjson.dumps(out).decode()
    assert out["messages"][0]["content"][0]["text"] == "call [PHONE_1]"
    assert orjson.loads(out["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {"to": "[PHONE_1]"}
    assert out["messages"][2]["content"] == "dialled [PHONE_1]"
    assert orjson.dumps(body) == before  # other attempts still get the original


class _Upper(AnswerFilter):
    def piece(self, slot, text):
        return text.upper()


def test_filters_of_several_stages_chain_in_order():
    restore = _RestoreOf({"[PHONE_1]": "+7 a"})
    chain = _Chain([restore, _Upper()])
    assert chain.piece(("content", 0), "x [PHO") == "X "
    assert chain.flush(("content", 0)) == "[PHO"
    assert chain.whole(("content", 0), "[PHONE_1]") == "+7 a"


def _RestoreOf(originals):
    from apps.privacy.guardrails import _RestoreFilter

    return _RestoreFilter(Restore(originals), "test")


class _Key:
    def __init__(self, *policies):
        self.policies = policies
        self.kind, self.id, self.organisation_id = "key", 1, None


class _Plan:
    def __init__(self, *policies):
        self.policies = policies


class _Model:
    def __init__(self, jurisdiction):
        self.jurisdiction, self.provider, self.public_id = jurisdiction, "p", "p/m"


class _Target:
    def __init__(self, jurisdiction):
        self.model = _Model(jurisdiction)


@pytest.mark.parametrize(("rule", "jurisdiction", "sent_plain"), [
    (Policy(mode="pseudonymize", outside="RU"), "RU", True),  # the primary at home: unchanged
    (Policy(mode="pseudonymize", outside="RU"), "US", False),  # the fallback abroad: anonymized
    (Policy(mode="pseudonymize"), "RU", False),
])
def test_the_rule_policy_is_decided_per_attempt_by_jurisdiction(rule, jurisdiction, sent_plain):
    body = {"messages": [{"role": "user", "content": f"my phone {PHONE}"}]}
    guard = Guard(_Key(), _Plan(rule), body, "r1")
    sent = guard.upstream(_Target(jurisdiction))
    assert (PHONE in sent["messages"][0]["content"]) is sent_plain


def test_one_request_falling_back_abroad_is_anonymized_only_on_that_attempt():
    body = {"messages": [{"role": "user", "content": f"my phone {PHONE}"}]}
    guard = Guard(_Key(), _Plan(Policy(mode="pseudonymize", outside="RU")), body, "r1")
    assert guard.upstream(_Target("RU")) is body
    abroad = guard.upstream(_Target("US"))
    assert abroad["messages"][0]["content"] == "my phone [PHONE_1]"
    assert guard.answer(_Target("RU")) is None
    assert guard.answer(_Target("US")).whole(("content", 0), "[PHONE_1]") == PHONE


def test_redact_sends_placeholders_and_restores_nothing():
    body = {"messages": [{"role": "user", "content": f"my phone {PHONE}"}]}
    guard = Guard(_Key(Policy(mode="redact")), _Plan(Policy(mode="pseudonymize")), body, "r1")
    assert guard.upstream(_Target("RU"))["messages"][0]["content"] == "my phone [PHONE_1]"
    assert guard.answer(_Target("RU")) is None
    assert not guard.cacheable


def test_altered_placeholders_reach_the_prometheus_counter():
    from prometheus_client import REGISTRY

    from apps.privacy.guardrails import _RestoreFilter

    def value():
        return REGISTRY.get_sample_value("xrouter_pd_unrestored_total", {"provider": "unit-test"}) or 0

    before = value()
    answer = _RestoreFilter(Restore({"[PHONE_1]": PHONE}), "unit-test")
    assert answer.piece(("content", 0), "[phone_1] and [PHO") == "[phone_1] and "
    assert answer.flush(("content", 0)) == "[PHO"
    answer.end()
    assert value() == before + 1


def test_a_large_prompt_is_rewritten_off_the_event_loop():
    import asyncio
    import threading

    from apps.privacy import guardrails

    seen = []

    class Recording(guardrails.Stage):
        def upstream(self, guard, body, target):
            seen.append(threading.current_thread() is threading.main_thread())
            return body

    async def run(text):
        guard = Guard(_Key(Policy(mode="pseudonymize")), _Plan(), {"messages": [{"role": "user", "content": text}]}, "r")
        guard.stages = [Recording()]
        await guard.aupstream(_Target("RU"))

    asyncio.run(run("short"))
    asyncio.run(run("x" * (guardrails.INLINE_CHARS + 1)))
    assert seen == [True, False]
