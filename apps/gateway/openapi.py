"""/v1 in the OpenAPI schema. These views are never served (xrouter_project/asgi.py sends /v1
to the lean gateway app); they exist so drf-spectacular documents the API beside /api/v1."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(["system", "developer", "user", "assistant", "tool", "function"])
    content = serializers.JSONField(help_text="A string, or a list of {type: text, text} parts.", allow_null=True)
    name = serializers.CharField(required=False)
    tool_calls = serializers.ListField(child=serializers.DictField(), required=False)
    tool_call_id = serializers.CharField(required=False)


class ChatCompletionRequestSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="provider/model (gigachat/GigaChat-2-Max), an alias, or a routing rule name.")
    messages = MessageSerializer(many=True)
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2)
    top_p = serializers.FloatField(required=False, min_value=0, max_value=1)
    max_tokens = serializers.IntegerField(required=False, min_value=1)
    max_completion_tokens = serializers.IntegerField(required=False, min_value=1)
    n = serializers.IntegerField(required=False, min_value=1, max_value=16)
    stop = serializers.JSONField(required=False)
    stream = serializers.BooleanField(required=False)
    stream_options = serializers.DictField(required=False)
    tools = serializers.ListField(child=serializers.DictField(), required=False)
    tool_choice = serializers.JSONField(required=False)
    functions = serializers.ListField(child=serializers.DictField(), required=False)
    function_call = serializers.JSONField(required=False)
    response_format = serializers.DictField(required=False)
    reasoning_effort = serializers.ChoiceField(["minimal", "low", "medium", "high"], required=False)
    thinking = serializers.BooleanField(required=False, help_text="XRouter: switch reasoning on/off for hybrid models.")
    user = serializers.CharField(required=False)


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


class EmbeddingsRequestSerializer(serializers.Serializer):
    model = serializers.CharField()
    input = serializers.JSONField(help_text="A string or a list of strings.")
    encoding_format = serializers.ChoiceField(["float", "base64"], required=False)
    dimensions = serializers.IntegerField(required=False)


class EmbeddingsResponseSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = serializers.ListField(child=serializers.DictField())
    model = serializers.CharField()
    usage = serializers.DictField()


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


class ChatCompletionsDoc(_DocOnly):
    @extend_schema(tags=["v1"], request=ChatCompletionRequestSerializer,
                   responses={200: ChatCompletionSerializer, **ERRORS},
                   description="OpenAI-compatible chat. With stream=true: text/event-stream of chat.completion.chunk.")
    def post(self, request):  # pragma: no cover - served by apps.gateway.app
        return _served_elsewhere()


class EmbeddingsDoc(_DocOnly):
    @extend_schema(tags=["v1"], request=EmbeddingsRequestSerializer, responses={200: EmbeddingsResponseSerializer, **ERRORS})
    def post(self, request):  # pragma: no cover
        return _served_elsewhere()


class ModelsDoc(_DocOnly):
    @extend_schema(tags=["v1"], responses={200: ModelListSerializer, 401: ERRORS[401]})
    def get(self, request):  # pragma: no cover
        return _served_elsewhere()


class ModelDoc(_DocOnly):
    @extend_schema(tags=["v1"], responses={200: ModelSerializer, 404: ERRORS[404]})
    def get(self, request, model_id):  # pragma: no cover
        return _served_elsewhere()
