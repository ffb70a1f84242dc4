from rest_framework import serializers

from apps.common.rates import LIMIT_FIELDS

from .models import SCOPES, ApiKey


class ApiKeySerializer(serializers.ModelSerializer):
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=SCOPES), required=False,
                                   help_text="Default: chat, embeddings, models:read (a key-created key: ∩ its parent's).")
    allowed_models = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=100,
                                           help_text='Model globs ("gigachat/*") or exact rule/alias names; empty: all.')

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scopes", "allowed_models", "residency", "parent", "created_at", "expires_at",
                  "revoked_at", *LIMIT_FIELDS]
        read_only_fields = ["id", "prefix", "parent", "created_at", "revoked_at"]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The plaintext key, shown once.")

    class Meta(ApiKeySerializer.Meta):
        fields = ApiKeySerializer.Meta.fields + ["key"]
