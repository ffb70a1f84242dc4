"""The /v1 part of the OpenAPI schema is generated from the pydantic models that validate /v1 requests
(apps/gateway/openapi.py), so it cannot drift: every field every model accepts is in the served schema,
with the same required ones, and nothing else; the interactive docs load no asset from elsewhere."""

import re
import typing

import pytest
from django.contrib.staticfiles import finders
from pydantic import BaseModel

from apps.gateway.openapi import COMPONENT_PREFIX
from apps.gateway.responses_schema import ResponsesRequest
from apps.gateway.schemas import ChatCompletionRequest, EmbeddingsRequest, StrictModel, TokenizeRequest

pytestmark = pytest.mark.django_db
ENDPOINTS = {"/v1/chat/completions": ChatCompletionRequest, "/v1/embeddings": EmbeddingsRequest,
             "/v1/responses": ResponsesRequest, "/v1/xrouter/tokenize": TokenizeRequest}


def _models_under(model: type[BaseModel], seen: dict) -> dict:
    """The model and every model its fields can hold, found from the Python annotations (not from the
    JSON Schema the generator writes, which is what is under test)."""
    seen[model.__name__] = model
    stack = [field.annotation for field in model.model_fields.values()]
    while stack:
        annotation = stack.pop()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation.__name__ not in seen:
                _models_under(annotation, seen)
        else:
            stack.extend(typing.get_args(annotation))
    return seen


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        return Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()


def test_every_accepted_field_is_in_the_schema_and_nothing_else(schema):
    components = schema["components"]["schemas"]
    models = {}
    for model in ENDPOINTS.values():
        _models_under(model, models)

    assert len(models) >= 14
    for name, model in models.items():
        assert issubclass(model, StrictModel), name
        component = components[COMPONENT_PREFIX + name]
        accepted = {field.alias or field_name for field_name, field in model.model_fields.items()}
        required = {field.alias or field_name for field_name, field in model.model_fields.items() if field.is_required()}
        assert set(component["properties"]) == accepted, name
        assert set(component.get("required", ())) == required, name
        assert component.get("additionalProperties") is False, name  # unknown fields are refused, and say so


def test_the_fields_the_hand_written_schema_lacked_are_there(schema):
    chat = schema["components"]["schemas"][f"{COMPONENT_PREFIX}ChatCompletionRequest"]["properties"]
    for name in ("presence_penalty", "frequency_penalty", "parallel_tool_calls", "seed", "logit_bias", "logprobs",
                 "top_logprobs", "metadata", "store", "service_tier"):
        assert name in chat, name
    message = schema["components"]["schemas"][f"{COMPONENT_PREFIX}Message"]["properties"]
    assert {"function_call", "refusal"} <= set(message)
    assert chat["temperature"]["anyOf"][0] == {"maximum": 2, "minimum": 0, "type": "number"}


def test_each_v1_endpoint_takes_its_model(schema):
    assert schema["openapi"].startswith("3.1")
    for path, model in ENDPOINTS.items():
        body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{COMPONENT_PREFIX}{model.__name__}"}


def test_the_interactive_docs_load_only_vendored_assets(client):
    page = client.get("/api/docs/").content.decode()

    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert assets and not [a for a in assets if re.match(r"(https?:)?//", a)], assets
    for asset in assets:
        if asset.startswith("/static/"):
            assert finders.find(asset.removeprefix("/static/")), asset
    assert "cdn" not in page.lower()


def test_v1_request_bodies_are_json_only():
    """/v1 parses JSON and nothing else; the schema must not offer form or multipart bodies."""
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path in ("/v1/chat/completions", "/v1/embeddings"):
        assert list(paths[path]["post"]["requestBody"]["content"]) == ["application/json"], path
