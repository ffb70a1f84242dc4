from rest_framework import serializers

from apps.common.rates import KEY_LIMIT_FIELDS

from .models import MAX_ALLOWED_IPS, SCOPES, ApiKey


class ApiKeySerializer(serializers.ModelSerializer):
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=SCOPES), required=False,
                                   help_text="Default: chat, embeddings, models:read (a key-created key: ∩ its parent's).")
    allowed_models = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=100,
                                           help_text='Model globs ("gigachat/*") or exact rule/alias names; empty: all.')
    allowed_ips = serializers.ListField(child=serializers.CharField(max_length=64), required=False,
                                        max_length=MAX_ALLOWED_IPS,
                                        help_text='CIDRs the key works from ("203.0.113.0/24", "2001:db8::/32"); empty: any.')

    blocked_terms = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=200,
                                          help_text="Requests containing any of these terms are refused (400).")
    user = serializers.SlugRelatedField(slug_field="username", read_only=True, help_text="Whose key it is.")

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "user", "organisation", "scopes", "allowed_models", "allowed_ips", "residency",
                  "parent", "created_at", "expires_at", "revoked_at", "last_used_at", *KEY_LIMIT_FIELDS,
                  "model_limits", "cost_centre", "pd_policy", "pd_names", "blocked_terms"]
        read_only_fields = ["id", "prefix", "user", "organisation", "parent", "created_at", "revoked_at", "last_used_at"]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The plaintext key, shown once.")

    class Meta(ApiKeySerializer.Meta):
        fields = ApiKeySerializer.Meta.fields + ["key"]


class ApiKeyRotateSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        min_value=0, max_value=2**31,
        help_text="How long the old key keeps working: 0 (refused at once) to 604800 (7 days).")


class ApiKeyRotatedSerializer(ApiKeyCreatedSerializer):
    replaces = ApiKeySerializer(read_only=True, help_text="The old key, with the expiry its grace period gave it.")

    class Meta(ApiKeyCreatedSerializer.Meta):
        fields = ApiKeyCreatedSerializer.Meta.fields + ["replaces"]
