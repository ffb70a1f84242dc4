"""The YandexGPT emulator replaying the exchanges of /work/shared/providers/yandexgpt.md."""

import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apps.emulators.yandex_iam import IAM_AUDIENCE

from .wire import ndjson

API_KEY = {"Authorization": "Api-Key demo-yandex-api-key"}
URI = "gpt://b1gdemofolder/yandexgpt/latest"
LITE = "gpt://b1gdemofolder/yandexgpt-lite/latest"
WEATHER_TOOL = {
    "function": {
        "name": "get_weather",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
}


def complete(http, yandex, body, headers=API_KEY):
    return http.post(yandex.base_url + "/foundationModels/v1/completion", headers=headers, json=body)


def test_non_stream_request_and_response_of_section_4(http, yandex, fresh_emulators):
    fresh_emulators["yandexgpt"].configure(api_keys={"example-key": "b1gexamplefolder0001"})
    body = {
        "modelUri": "gpt://b1gexamplefolder0001/yandexgpt/latest",
        "completionOptions": {"stream": False, "temperature": 0.3, "maxTokens": "1500", "reasoningOptions": {"mode": "DISABLED"}},
        "messages": [{"role": "system", "text": "Answer briefly."}, {"role": "user", "text": "What is a platypus?"}],
        "tools": [],
        "jsonObject": False,
        "parallelToolCalls": True,
        "toolChoice": {"mode": "AUTO"},
    }
    response = complete(http, yandex, body, headers={"Authorization": "Api-Key example-key", "x-client-request-id": "c-1"})
    assert response.status_code == 200
    assert response.headers["x-client-request-id"] == "c-1"
    uuid.UUID(response.headers["x-request-id"])
    assert response.headers["x-server-trace-id"]
    assert response.text.endswith("}\n")
    assert response.json() == {
        "result": {
            "alternatives": [
                {"message": {"role": "assistant", "text": "Echo: What is a platypus?"}, "status": "ALTERNATIVE_STATUS_FINAL"}
            ],
            "usage": {"inputTextTokens": "8", "completionTokens": "5", "totalTokens": "13", "completionTokensDetails": {}},
            "modelVersion": "09.02.2025",
        }
    }


def test_stream_is_ndjson_with_cumulative_text(http, yandex):
    body = {
        "modelUri": LITE,
        "completionOptions": {"stream": True, "maxTokens": "50"},
        "messages": [{"role": "user", "text": "one two three four five six seven"}],
    }
    response = complete(http, yandex, body)
    assert response.headers["content-type"] == "application/json"
    assert "data:" not in response.text and "[DONE]" not in response.text
    lines = ndjson(response.text)
    assert len(lines) == 3
    texts = [line["result"]["alternatives"][0]["message"]["text"] for line in lines]
    statuses = [line["result"]["alternatives"][0]["status"] for line in lines]
    assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:], strict=False))
    assert texts[-1] == "Echo: one two three four five six seven"
    assert statuses == ["ALTERNATIVE_STATUS_PARTIAL", "ALTERNATIVE_STATUS_PARTIAL", "ALTERNATIVE_STATUS_FINAL"]
    completion = [int(line["result"]["usage"]["completionTokens"]) for line in lines]
    assert completion == [3, 6, 8]
    assert all(line["result"]["modelVersion"] == "22.05.2025" for line in lines)


def test_revised_stream_stops_extending_the_earlier_text(http, yandex, fresh_emulators):
    fresh_emulators["yandexgpt"].add_fault(revise_at_chunk=1)
    body = {"modelUri": URI, "completionOptions": {"stream": True}, "messages": [{"role": "user", "text": "a b c d e"}]}
    texts = [line["result"]["alternatives"][0]["message"]["text"] for line in ndjson(complete(http, yandex, body).text)]
    assert texts[0] == "Echo: a b "
    assert not texts[1].startswith(texts[0])
    assert texts[-1] == "(revised) Echo: a b c d e"


def test_tool_call_and_tool_result_of_section_4_3(http, yandex):
    body = {"modelUri": URI, "messages": [{"role": "user", "text": "Weather in Moscow?"}], "tools": [WEATHER_TOOL]}
    result = complete(http, yandex, body).json()["result"]
    alternative = result["alternatives"][0]
    assert alternative["status"] == "ALTERNATIVE_STATUS_TOOL_CALLS"
    assert alternative["message"] == {
        "role": "assistant",
        "toolCallList": {"toolCalls": [{"functionCall": {"name": "get_weather", "arguments": {"city": "Moscow"}}}]},
    }
    body["messages"] += [
        alternative["message"],
        {
            "role": "user",
            "toolResultList": {"toolResults": [{"functionResult": {"name": "get_weather", "content": '{"temp": -5}'}}]},
        },
    ]
    answer = complete(http, yandex, body).json()["result"]["alternatives"][0]
    assert answer == {"message": {"role": "assistant", "text": 'Tool result: {"temp": -5}'}, "status": "ALTERNATIVE_STATUS_FINAL"}


def test_tool_choice_none_and_forced_function(http, yandex):
    base = {
        "modelUri": URI,
        "messages": [{"role": "user", "text": "x"}],
        "tools": [{"function": {"name": "noop", "parameters": {"type": "object"}}}, WEATHER_TOOL],
    }
    plain = complete(http, yandex, {**base, "toolChoice": {"mode": "NONE"}}).json()["result"]["alternatives"][0]
    assert plain["message"]["text"] == "Echo: x"
    forced = complete(http, yandex, {**base, "toolChoice": {"functionName": "get_weather"}}).json()
    call = forced["result"]["alternatives"][0]["message"]["toolCallList"]["toolCalls"][0]["functionCall"]
    assert call["name"] == "get_weather"


def test_streamed_tool_call_is_one_line(http, yandex):
    body = {
        "modelUri": URI,
        "completionOptions": {"stream": True},
        "messages": [{"role": "user", "text": "x"}],
        "tools": [WEATHER_TOOL],
    }
    lines = ndjson(complete(http, yandex, body).text)
    assert len(lines) == 1 and lines[0]["result"]["alternatives"][0]["status"] == "ALTERNATIVE_STATUS_TOOL_CALLS"


def test_max_tokens_gives_truncated_final(http, yandex):
    body = {"modelUri": URI, "completionOptions": {"maxTokens": 2}, "messages": [{"role": "user", "text": "a b c"}]}
    alternative = complete(http, yandex, body).json()["result"]["alternatives"][0]
    assert alternative == {"message": {"role": "assistant", "text": "Echo: a"}, "status": "ALTERNATIVE_STATUS_TRUNCATED_FINAL"}


def test_hidden_reasoning_is_only_counted(http, yandex):
    body = {
        "modelUri": URI,
        "completionOptions": {"reasoningOptions": {"mode": "ENABLED_HIDDEN"}},
        "messages": [{"role": "user", "text": "Think"}],
    }
    result = complete(http, yandex, body).json()["result"]
    assert result["alternatives"][0]["message"]["text"] == "Echo: Think"
    # "Thinking about: Think" = 3 reasoning tokens, plus 2 of answer.
    assert result["usage"]["completionTokensDetails"] == {"reasoningTokens": "3"}
    assert result["usage"]["completionTokens"] == "5"


def test_json_schema_answer_is_synthesised(http, yandex):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
    body = {"modelUri": URI, "messages": [{"role": "user", "text": "x"}], "jsonSchema": {"schema": schema}}
    text = complete(http, yandex, body).json()["result"]["alternatives"][0]["message"]["text"]
    assert json.loads(text) == {"name": "Moscow", "age": 3}
    body = {"modelUri": URI, "messages": [{"role": "user", "text": "x"}], "jsonObject": True}
    assert json.loads(complete(http, yandex, body).json()["result"]["alternatives"][0]["message"]["text"]) == {
        "answer": "Echo: x"
    }


def test_invalid_json_body_gets_the_gateway_shape(http, yandex):
    response = http.post(yandex.base_url + "/foundationModels/v1/completion", headers=API_KEY, content=b'{"modelUri": }')
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error", "code", "message", "details"}
    assert body["code"] == 3 and body["error"] == body["message"] and body["details"] == []


def test_unknown_top_level_key_is_400(http, yandex):
    response = complete(http, yandex, {"modelUri": URI, "messages": [{"role": "user", "text": "x"}], "temperature": 0.5})
    assert response.status_code == 400
    assert "temperature" in response.json()["message"]


def test_invalid_role_is_a_session_error(http, yandex):
    response = complete(http, yandex, {"modelUri": URI, "messages": [{"role": "bot", "text": "x"}]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["grpcCode"], error["httpCode"], error["httpStatus"], error["details"]) == (3, 400, "Bad Request", [])
    assert error["message"].startswith("Error in session internal_id=")
    assert error["message"].endswith("folder_id=b1gdemofolder: invalid message role 'bot'")


@pytest.mark.parametrize("max_tokens", ["0", -5, "many"])
def test_max_tokens_must_be_a_positive_number(http, yandex, max_tokens):
    body = {"modelUri": URI, "completionOptions": {"maxTokens": max_tokens}, "messages": [{"role": "user", "text": "x"}]}
    response = complete(http, yandex, body)
    assert response.status_code == 400
    assert response.json()["error"]["message"].endswith("maxTokens must be greater than zero")


def test_message_needs_exactly_one_payload(http, yandex):
    response = complete(http, yandex, {"modelUri": URI, "messages": [{"role": "user", "text": "x", "toolResultList": {}}]})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "headers, uri, status, grpc_code",
    [
        ({"Authorization": "Api-Key wrong"}, URI, 401, 16),
        ({}, URI, 401, 16),
        ({"Authorization": "Bearer t1.unknown"}, URI, 401, 16),
        (API_KEY, "gpt://b1gotherfolder/yandexgpt/latest", 403, 7),
        (API_KEY, "gpt://b1gdemofolder/gpt-5/latest", 404, 5),
        (API_KEY, "gpt://b1gdemofolder/yandexgpt/nightly", 404, 5),
        ({**API_KEY, "x-folder-id": "b1gotherfolder"}, URI, 400, 3),
    ],
)
def test_refusals_use_the_completion_error_shape(http, yandex, headers, uri, status, grpc_code):
    response = complete(http, yandex, {"modelUri": uri, "messages": [{"role": "user", "text": "x"}]}, headers=headers)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["grpcCode"] == grpc_code and error["httpCode"] == status


def test_model_uri_without_branch_and_llama(http, yandex):
    for uri in (
        "gpt://b1gdemofolder/yandexgpt",
        "gpt://b1gdemofolder/llama-lite/latest",
        "gpt://b1gdemofolder/yandexgpt-lite/rc",
    ):
        assert complete(http, yandex, {"modelUri": uri, "messages": [{"role": "user", "text": "x"}]}).status_code == 200


def test_context_overflow_is_400(http, yandex, fresh_emulators):
    fresh_emulators["yandexgpt"].configure(context_length=3)
    response = complete(http, yandex, {"modelUri": URI, "messages": [{"role": "user", "text": "a b c d"}]})
    assert response.status_code == 400
    assert response.json()["error"]["message"].endswith("Number of input tokens must be no more than 3, got 5")


def test_text_embedding_doc_and_query(http, yandex, fresh_emulators):
    url = yandex.base_url + "/foundationModels/v1/textEmbedding"
    doc = http.post(
        url, headers=API_KEY, json={"modelUri": "emb://b1gdemofolder/text-search-doc/latest", "text": "Document text"}
    )
    assert doc.status_code == 200
    body = doc.json()
    assert set(body) == {"embedding", "numTokens", "modelVersion"}
    assert len(body["embedding"]) == 256 and body["numTokens"] == "2"
    query = http.post(url, headers=API_KEY, json={"modelUri": "emb://b1gdemofolder/text-search-query/latest", "text": "q"})
    assert query.status_code == 200
    assert fresh_emulators["yandexgpt"].ledger()[-1]["model"] == "emb://b1gdemofolder/text-search-query/latest"


def test_text_embedding_errors_use_the_unary_shape(http, yandex):
    url = yandex.base_url + "/foundationModels/v1/textEmbedding"
    bad_key = http.post(
        url,
        headers={"Authorization": "Api-Key nope"},
        json={"modelUri": "emb://b1gdemofolder/text-search-doc/latest", "text": "x"},
    )
    assert bad_key.status_code == 401
    assert bad_key.json() == {"code": 16, "message": "Unknown api key 'nope'", "details": []}
    unknown = http.post(url, headers=API_KEY, json={"modelUri": "emb://b1gdemofolder/text-search-doc/latest", "texts": ["x"]})
    assert unknown.status_code == 400


# --- IAM ---


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def service_account(rsa_key, fresh_emulators):
    public = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    fresh_emulators["yandexgpt"].configure(
        service_accounts={"ajekeyid0001": {"service_account_id": "ajesa0001", "public_key": public.decode()}}
    )
    return "ajekeyid0001"


def make_jwt(key, kid="ajekeyid0001", iss="ajesa0001", lifetime=3600, algorithm="PS256", aud=IAM_AUDIENCE):
    now = int(time.time())
    claims = {"iss": iss, "aud": aud, "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


def test_jwt_exchange_issues_an_iam_token_that_authorizes(http, yandex, rsa_key, service_account):
    response = http.post(yandex.auth_url, json={"jwt": make_jwt(rsa_key)})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"iamToken", "expiresAt"}
    assert body["iamToken"].startswith("t1.")
    assert body["expiresAt"].endswith("Z") and len(body["expiresAt"].split(".")[1]) == 10  # nanoseconds + Z
    headers = {"Authorization": f"Bearer {body['iamToken']}"}
    answer = complete(http, yandex, {"modelUri": URI, "messages": [{"role": "user", "text": "iam"}]}, headers=headers)
    assert answer.status_code == 200


@pytest.mark.parametrize(
    "kwargs, status",
    [
        ({"kid": "unknown"}, 401),
        ({"iss": "someone-else"}, 401),
        ({"aud": "https://example.com"}, 401),
        ({"lifetime": 7200}, 400),
        ({"algorithm": "RS256"}, 400),
    ],
)
def test_bad_jwts_are_refused(http, yandex, rsa_key, service_account, kwargs, status):
    response = http.post(yandex.auth_url, json={"jwt": make_jwt(rsa_key, **kwargs)})
    assert response.status_code == status
    assert set(response.json()) == {"code", "message", "details"}


def test_jwt_signed_by_another_key_is_refused(http, yandex, service_account):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = http.post(yandex.auth_url, json={"jwt": make_jwt(other)})
    assert response.status_code == 401 and response.json()["code"] == 16


def test_passport_token_exchange_gives_a_user_token(http, yandex):
    token = http.post(yandex.auth_url, json={"yandexPassportOauthToken": "y0_demo-oauth-token"}).json()["iamToken"]
    headers = {"Authorization": f"Bearer {token}", "x-folder-id": "b1ganyfolder"}
    body = {"modelUri": "gpt://b1ganyfolder/yandexgpt/latest", "messages": [{"role": "user", "text": "x"}]}
    assert complete(http, yandex, body, headers=headers).status_code == 200


def test_expired_iam_token_is_refused(http, yandex, rsa_key, service_account, fresh_emulators):
    fresh_emulators["yandexgpt"].configure(iam_token_lifetime_s=0.1)
    token = http.post(yandex.auth_url, json={"jwt": make_jwt(rsa_key)}).json()["iamToken"]
    time.sleep(0.2)
    response = complete(
        http, yandex, {"modelUri": URI, "messages": [{"role": "user", "text": "x"}]}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401


def test_tokenize(http, yandex):
    url = yandex.base_url + "/foundationModels/v1/tokenize"
    response = http.post(url, headers=API_KEY, json={"modelUri": URI, "text": "ping pong"})
    assert response.status_code == 200
    body = response.json()
    assert [t["text"] for t in body["tokens"]] == ["ping ", "pong"]
    assert all(t["id"].isdigit() and t["special"] is False for t in body["tokens"])
    assert body["modelVersion"] == "09.02.2025"
    refused = http.post(url, headers={"Authorization": "Api-Key nope"}, json={"modelUri": URI, "text": "x"})
    assert refused.status_code == 401 and refused.json()["code"] == 16


def test_tokenize_completion_counts_what_completion_bills(http, yandex):
    """Tokenizer.TokenizeCompletion takes a whole CompletionRequest; its tokens are the completion's
    inputTextTokens for the same request (a special token opening each message)."""
    request = {"modelUri": URI, "messages": [{"role": "system", "text": "Be brief."}, {"role": "user", "text": "ping pong"}]}
    response = http.post(yandex.base_url + "/foundationModels/v1/tokenizeCompletion", headers=API_KEY, json=request)
    assert response.status_code == 200
    tokens = response.json()["tokens"]
    assert [t["text"] for t in tokens if not t["special"]] == ["Be ", "brief.", "ping ", "pong"]
    billed = complete(http, yandex, request).json()["result"]["usage"]["inputTextTokens"]
    assert str(len(tokens)) == billed
    bad = http.post(yandex.base_url + "/foundationModels/v1/tokenizeCompletion", headers=API_KEY,
                    json={**request, "messages": []})
    assert bad.status_code == 400
