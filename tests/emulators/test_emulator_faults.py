"""Fault injection, the ledger and the control API, across the emulators."""

import time

import httpx
import pytest

from .wire import ndjson

MTS_KEY = {"Authorization": "Bearer sk-demo-mts-key"}
CHAT = "/v1/chat/completions"
BODY = {"model": "mws-gpt-alpha", "messages": [{"role": "user", "content": "[long]"}]}


def mts_chat(http, mts, **extra):
    return http.post(mts.base_url + "/chat/completions", headers=MTS_KEY, json={**BODY, **extra})


def tagged(request_id):
    """MTS headers carrying a caller's request id, so the ledger entry can be found by it."""
    return {**MTS_KEY, "X-Request-Id": request_id}


def ledger_entry(control, request_id, timeout=3.0):
    """This request's ledger entry, waiting for the emulator to finish it.

    Found by its id, not as the ledger's last entry: a request an earlier test abandoned (a client
    read timeout, say) may still end on the emulator — and be recorded — while this test runs."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in control.ledger() if e["client_request_id"] == request_id]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.02)


def test_status_fault_gigachat_shape(http, gigachat, giga_headers, fresh_emulators):
    fresh_emulators["gigachat"].add_fault(status=429, retry_after=3)
    response = http.post(
        gigachat.base_url + "/chat/completions",
        headers=giga_headers,
        json={"model": "GigaChat", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"
    assert response.json() == {"status": 429, "message": "Too many requests"}


def test_status_fault_yandex_shapes(http, yandex, fresh_emulators):
    fresh_emulators["yandexgpt"].add_faults({"status": 429}, {"status": 500})
    headers = {"Authorization": "Api-Key demo-yandex-api-key"}
    completion = http.post(
        yandex.base_url + "/foundationModels/v1/completion",
        headers=headers,
        json={"modelUri": "gpt://b1gdemofolder/yandexgpt/latest", "messages": []},
    )
    error = completion.json()["error"]
    assert completion.status_code == 429 and (error["grpcCode"], error["httpStatus"]) == (8, "Too Many Requests")
    assert "gauge quota limit exceed" in error["message"]
    embedding = http.post(yandex.base_url + "/foundationModels/v1/textEmbedding", headers=headers, json={})
    assert embedding.status_code == 500 and embedding.json() == {"code": 13, "message": "Internal Server Error", "details": []}


def test_status_fault_openai_shapes(http, mts, tbank, fresh_emulators):
    fresh_emulators["mts"].add_fault(status=503)
    fresh_emulators["tbank"].add_fault(status=500, message="boom")
    assert mts_chat(http, mts).json()["error"]["type"] == "server_error"
    response = http.post(
        tbank.base_url + "/chat/completions",
        headers={"Authorization": "Bearer sk-demo-tbank-key"},
        json={"model": "t-tech/T-lite-it-2.1", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.json() == {"object": "error", "message": "boom", "type": "InternalServerError", "param": None, "code": 500}


def test_custom_fault_body_is_sent_verbatim(http, mts, fresh_emulators):
    fresh_emulators["mts"].add_fault(status=502, body={"detail": "upstream"})
    response = mts_chat(http, mts)
    assert response.status_code == 502 and response.json() == {"detail": "upstream"}


def test_count_fires_k_times(http, mts, fresh_emulators):
    fresh_emulators["mts"].add_fault(status=500, count=2)
    assert [mts_chat(http, mts).status_code for _ in range(3)] == [500, 500, 200]
    assert fresh_emulators["mts"].faults() == []


def test_share_is_deterministic(http, mts, fresh_emulators):
    fresh_emulators["mts"].add_fault(status=500, share=0.5)
    assert [mts_chat(http, mts).status_code for _ in range(4)] == [200, 500, 200, 500]
    fresh_emulators["mts"].clear_faults()
    assert mts_chat(http, mts).status_code == 200


def test_path_and_model_filters(http, mts, fresh_emulators):
    control = fresh_emulators["mts"]
    control.add_faults({"status": 500, "path": "/v1/embeddings"}, {"status": 404, "model": "gpt-4o"})
    assert mts_chat(http, mts).status_code == 200
    assert mts_chat(http, mts, model="gpt-4o").status_code == 404
    embedding = http.post(mts.base_url + "/embeddings", headers=MTS_KEY, json={"model": "bge-m3", "input": "x"})
    assert embedding.status_code == 500


def test_token_endpoints_are_spared_unless_named(http, gigachat, giga_headers, fresh_emulators):
    control = fresh_emulators["gigachat"]
    control.add_fault(status=500)
    from .test_emulator_gigachat import oauth

    assert oauth(http, gigachat).status_code == 200
    control.clear_faults()
    control.add_fault(status=500, path="/api/v2/oauth")
    assert oauth(http, gigachat).status_code == 500


def test_path_prefix_filter(http, yandex, fresh_emulators):
    fresh_emulators["yandexgpt"].add_fault(status=503, path="/foundationModels/*")
    response = http.post(yandex.base_url + "/foundationModels/v1/textEmbedding", json={})
    assert response.status_code == 503


def test_faults_fire_in_queue_order(http, mts, fresh_emulators):
    fresh_emulators["mts"].add_faults({"status": 500}, {"status": 502})
    assert [mts_chat(http, mts).status_code for _ in range(3)] == [500, 502, 200]


def test_latency(http, mts, fresh_emulators):
    fresh_emulators["mts"].add_fault(latency_ms=300)
    started = time.monotonic()
    assert mts_chat(http, mts).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_first_byte_delay_sends_headers_first(mts, fresh_emulators):
    fresh_emulators["mts"].add_fault(first_byte_delay_ms=400)
    with httpx.Client(timeout=httpx.Timeout(5, read=0.2)) as client:
        with client.stream("POST", mts.base_url + "/chat/completions", headers=tagged("slow"), json={**BODY, "stream": True}) as r:
            assert r.status_code == 200  # headers arrived before the read timeout
            with pytest.raises(httpx.ReadTimeout):
                next(r.iter_bytes())
    assert ledger_entry(fresh_emulators["mts"], "slow")["note"] == "client_disconnected"  # ended before the next test


def test_chunk_delay_slows_the_stream(http, mts, fresh_emulators):
    fresh_emulators["mts"].add_fault(chunk_delay_ms=20)
    started = time.monotonic()
    mts_chat(http, mts, stream=True, messages=[{"role": "user", "content": "a b c d e f g"}])
    assert time.monotonic() - started >= 0.04


def test_cut_after_chunks_breaks_the_body(mts, fresh_emulators):
    fresh_emulators["mts"].add_fault(cut_after_chunks=3)
    lines = []
    with httpx.Client(timeout=5) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            with client.stream("POST", mts.base_url + "/chat/completions", headers=tagged("cut"), json={**BODY, "stream": True}) as r:
                for line in r.iter_lines():
                    lines.append(line)
    assert len([line for line in lines if line.startswith("data: ")]) == 3
    assert ledger_entry(fresh_emulators["mts"], "cut")["note"] == "cut"


def test_cut_non_stream_body(mts, fresh_emulators):
    fresh_emulators["mts"].add_fault(cut_after_chunks=0)
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.RemoteProtocolError):
        client.post(mts.base_url + "/chat/completions", headers=MTS_KEY, json=BODY)


def test_malformed_chunk(http, mts, yandex, fresh_emulators):
    fresh_emulators["mts"].add_fault(malformed_chunk_at=1)
    text = mts_chat(http, mts, stream=True).text
    second = text.split("\n\n")[1]
    assert second.startswith("data: {") and not second.endswith("}")
    fresh_emulators["yandexgpt"].add_fault(malformed_chunk_at=0)
    body = {
        "modelUri": "gpt://b1gdemofolder/yandexgpt/latest",
        "completionOptions": {"stream": True},
        "messages": [{"role": "user", "text": "a b c d"}],
    }
    response = http.post(
        yandex.base_url + "/foundationModels/v1/completion", headers={"Authorization": "Api-Key demo-yandex-api-key"}, json=body
    )
    with pytest.raises(ValueError):
        ndjson(response.text)


def test_malformed_non_stream_body(http, mts, fresh_emulators):
    fresh_emulators["mts"].add_fault(malformed_chunk_at=0)
    response = mts_chat(http, mts)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_reset_closes_without_a_response(mts, fresh_emulators):
    fresh_emulators["mts"].add_fault(reset=True)
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.RemoteProtocolError):
        client.post(mts.base_url + "/chat/completions", headers=tagged("reset"), json=BODY)
    entry = ledger_entry(fresh_emulators["mts"], "reset")
    assert (entry["status"], entry["fault"], entry["note"]) == (0, "reset", "reset")


def test_invalid_faults_are_refused(http, mts):
    for fault in ({"status": 42}, {"share": 2}, {"count": -1}, {"colour": "red"}):
        response = http.post(mts.control_url + "/faults", json=fault)
        assert response.status_code == 400, fault


def test_ledger_records_and_clears(http, mts, fresh_emulators):
    control = fresh_emulators["mts"]
    mts_chat(http, mts, stream=True, messages=[{"role": "user", "content": "a b"}])
    http.post(mts.base_url + "/chat/completions", headers={"Authorization": "Bearer wrong"}, json=BODY)
    first, second = control.ledger()
    assert set(first) == {
        "request_id",
        "client_request_id",
        "method",
        "path",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "status",
        "stream",
        "ts",
        "ended",
        "fault",
        "note",
    }
    assert (first["path"], first["model"], first["stream"], first["status"]) == (CHAT, "mws-gpt-alpha", True, 200)
    assert (first["prompt_tokens"], first["completion_tokens"]) == (3, 3)
    assert second["status"] == 401
    control.clear_ledger()
    assert control.ledger() == []


def test_ledger_request_id_matches_the_response_header(http, mts, fresh_emulators):
    response = mts_chat(http, mts)
    assert fresh_emulators["mts"].ledger()[-1]["request_id"] == response.headers["x-request-id"]


def test_client_disconnect_is_noted(mts, fresh_emulators):
    fresh_emulators["mts"].add_fault(chunk_delay_ms=30)
    with httpx.Client(timeout=5) as client:
        with client.stream("POST", mts.base_url + "/chat/completions", headers=tagged("gone"), json={**BODY, "stream": True}) as r:
            next(r.iter_lines())
    assert ledger_entry(fresh_emulators["mts"], "gone")["note"] == "client_disconnected"


def test_config_rejects_unknown_settings_and_resets(http, mts, fresh_emulators):
    assert http.post(mts.control_url + "/config", json={"colour": "red"}).status_code == 400
    fresh_emulators["mts"].configure(api_keys=["sk-other"])
    assert mts_chat(http, mts).status_code == 401
    assert http.delete(mts.control_url + "/config").json()["api_keys"] == ["sk-demo-mts-key"]
    assert mts_chat(http, mts).status_code == 200


def test_health_and_unknown_routes(http, running_emulators):
    for name in ("gigachat", "yandexgpt", "mts", "tbank"):
        assert http.get(running_emulators[name].control_url + "/health").json() == {"status": "ok", "emulator": name}
    missing = http.get(running_emulators["gigachat"].origin + "/api/v1/nothing")
    assert missing.status_code == 404 and missing.json() == {"status": 404, "message": "Not Found"}


def test_model_filter_accepts_a_bare_yandex_model_name(http, yandex, fresh_emulators):
    fresh_emulators["yandexgpt"].add_fault(status=500, model="yandexgpt-lite")
    headers = {"Authorization": "Api-Key demo-yandex-api-key"}
    url = yandex.base_url + "/foundationModels/v1/completion"
    messages = [{"role": "user", "text": "x"}]
    assert (
        http.post(url, headers=headers, json={"modelUri": "gpt://b1gdemofolder/yandexgpt", "messages": messages}).status_code
        == 200
    )
    lite = {"modelUri": "gpt://b1gdemofolder/yandexgpt-lite/latest", "messages": messages}
    assert http.post(url, headers=headers, json=lite).status_code == 500


def test_the_ledger_keeps_the_callers_request_id_and_its_configured_size(http, mts, fresh_emulators):
    control = fresh_emulators["mts"]
    control.configure(ledger_size=3)
    for n in range(5):
        assert http.post(mts.base_url + "/chat/completions", headers={**MTS_KEY, "X-Request-Id": f"abc.{n}"},
                         json=BODY).status_code == 200
    assert [e["client_request_id"] for e in control.ledger()] == ["abc.2", "abc.3", "abc.4"]  # the newest three
    assert mts_chat(http, mts).status_code == 200 and control.ledger()[-1]["client_request_id"] == ""  # none sent
    with pytest.raises(httpx.HTTPStatusError):
        control.configure(ledger_size=0)
    control.reset()
    assert control.configure()["ledger_size"] == 10_000


def test_no_usage_drops_the_usage_of_streams_and_json_answers(http, mts, fresh_emulators):
    fresh_emulators["mts"].add_fault(no_usage=True, count=2)
    answer = mts_chat(http, mts)
    assert answer.status_code == 200 and "usage" not in answer.json() and answer.json()["choices"]
    streamed = mts_chat(http, mts, stream=True, stream_options={"include_usage": True})
    events = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and all('"usage"' not in event for event in events)
    assert [e["fault"] for e in fresh_emulators["mts"].ledger()] == ["no_usage", "no_usage"]
    again = mts_chat(http, mts, stream=True, stream_options={"include_usage": True})
    assert '"usage"' in again.text  # the fault fired twice and is gone
