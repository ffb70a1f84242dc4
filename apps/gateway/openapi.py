"""/v1 in the OpenAPI schema. These views are never served (xrouter_project/asgi.py sends /v1
to the lean gateway app); they exist so drf-spectacular documents the API beside /api/v1.

Request bodies are the JSON Schemas of the very pydantic models that validate them (schemas.py),
so the documentation cannot drift from what /v1 accepts; their parts are components named
`V1<model>` (no clash with the management API's). The schema is OpenAPI 3.1, whose schemas are the
JSON Schema pydantic writes. Responses, which nothing validates, are described by serializers."""

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from .responses_schema import ResponsesRequest
from .schemas import ChatCompletionRequest, EmbeddingsRequest, StrictModel, TokenizeRequest

COMPONENT_PREFIX = "V1"


class RequestModelSchema(OpenApiSerializerExtension):
    """A /v1 request model's JSON Schema, as pydantic validates it (drf-spectacular's own pydantic
    support writes the serialization schema, and unprefixed component names)."""

    target_class = StrictModel
    match_subclasses = True
    priority = 1  # before drf_spectacular.contrib.pydantic

    def get_name(self, auto_schema, direction):
        return COMPONENT_PREFIX + self.target.__name__

    def map_serializer(self, auto_schema, direction):
        schema = self.target.model_json_schema(mode="validation",
                                               ref_template=f"#/components/schemas/{COMPONENT_PREFIX}{{model}}")
        for name, part in schema.pop("$defs", {}).items():
            component = ResolvedComponent(name=COMPONENT_PREFIX + name, type=ResolvedComponent.SCHEMA,
                                          object=COMPONENT_PREFIX + name, schema=part)
            auto_schema.registry.register_on_missing(component)
        return schema


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    prompt_tokens_details = serializers.DictField(required=False)
    completion_tokens_details = serializers.DictField(required=False)


class ChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = serializers.DictField()
    finish_reason = serializers.CharField()


class ChatCompletionSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="chat.completion")
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = ChoiceSerializer(many=True)
    usage = UsageSerializer()


class ResponseUsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    input_tokens_details = serializers.DictField(help_text="{cached_tokens}")
    output_tokens = serializers.IntegerField()
    output_tokens_details = serializers.DictField(help_text="{reasoning_tokens}")
    total_tokens = serializers.IntegerField()


class ResponseObjectSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="response")
    created_at = serializers.IntegerField()
    status = serializers.ChoiceField(["completed", "incomplete", "failed", "in_progress"])
    model = serializers.CharField()
    output = serializers.ListField(child=serializers.DictField(),
                                   help_text="message items (output_text content) and function_call items")
    usage = ResponseUsageSerializer()
    error = serializers.DictField(allow_null=True)
    incomplete_details = serializers.DictField(allow_null=True, help_text="{reason: max_output_tokens | content_filter}")


class EmbeddingsResponseSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = serializers.ListField(child=serializers.DictField())
    model = serializers.CharField()
    usage = serializers.DictField()


class TokenizeResponseSerializer(serializers.Serializer):
    object = serializers.CharField(default="xrouter.tokenize")
    model = serializers.CharField(help_text="the model a chat request would be sent to first")
    prompt_tokens = serializers.IntegerField()
    source = serializers.ChoiceField(["provider", "estimate"])


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="model")
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


class ModelListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = ModelSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    error = serializers.DictField(help_text="{message, type, param, code}")


ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (400, 401, 403, 404, 413, 429, 502, 503, 504)}


def _served_elsewhere():
    return Response({"error": {"message": "Served by the gateway app under /v1.", "type": "not_found_error"}}, status=404)


class _DocOnly(APIView):
    authentication_classes = []
    permission_classes = []
    # /v1 reads JSON only: without this the schema would also offer form and multipart bodies, which
    # /v1 refuses (schema-generated requests sent them by the thousand: bench/chaos).
    parser_classes = [JSONParser]


class ChatCompletionsDoc(_DocOnly):
    @extend_schema(tags=["v1"], request=ChatCompletionRequest,
                   responses={200: ChatCompletionSerializer, **ERRORS},
                   description="OpenAI-compatible chat. With stream=true: text/event-stream of chat.completion.chunk.")
    def post(self, request):  # pragma: no cover - served by apps.gateway.app
        return _served_elsewhere()


class ResponsesDoc(_DocOnly):
    @extend_schema(tags=["v1"], request=ResponsesRequest, responses={200: ResponseObjectSerializer, **ERRORS},
                   description="OpenAI's Responses API, stateless (store, previous_response_id and built-in tools are "
                               "refused), on the chat path. With stream=true: text/event-stream of response.* events.")
    def post(self, request):  # pragma: no cover - served by apps.gateway.app
        return _served_elsewhere()


class EmbeddingsDoc(_DocOnly):
    @extend_schema(tags=["v1"], request=EmbeddingsRequest, responses={200: EmbeddingsResponseSerializer, **ERRORS})
    def post(self, request):  # pragma: no cover
        return _served_elsewhere()


class TokenizeDoc(_DocOnly):
    @extend_schema(tags=["v1"], request=TokenizeRequest, responses={200: TokenizeResponseSerializer, **ERRORS},
                   description="XRouter: a prompt's tokens as the provider's tokenizer counts them (GigaChat, "
                               "YandexGPT), else the gateway's estimate. Needs the chat scope.")
    def post(self, request):  # pragma: no cover - served by apps.gateway.app
        return _served_elsewhere()


class ModelsDoc(_DocOnly):
    @extend_schema(tags=["v1"], responses={200: ModelListSerializer, 401: ERRORS[401]})
    def get(self, request):  # pragma: no cover
        return _served_elsewhere()


class ModelDoc(_DocOnly):
    @extend_schema(tags=["v1"], operation_id="v1_model_retrieve", responses={200: ModelSerializer, 404: ERRORS[404]})
    def get(self, request, model_id):  # pragma: no cover
        return _served_elsewhere()
