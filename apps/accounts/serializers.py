from rest_framework import serializers

from apps.common.client_address import MAX_ALLOWED_IPS
from apps.common.rates import LIMIT_FIELDS

from .models import Membership, Organisation, User


class OrganisationSerializer(serializers.ModelSerializer):
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=100,
        help_text='Policy: model globs ("gigachat/*") or exact rule/alias names its keys may use; empty: all.',
    )
    blocked_terms = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=200,
                                          help_text="Requests of its keys containing any of these terms are refused (400).")
    allowed_ips = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=MAX_ALLOWED_IPS,
        help_text="Networks (CIDRs) the organisation's keys and tokens may be used from; empty: any. Applies at once.",
    )
    role = serializers.CharField(read_only=True, source="my_role", help_text="The caller's role in the organisation.")

    class Meta:
        model = Organisation
        # The limits are the operator's (the admin); the monthly budget is the organisation's own cap.
        fields = ["id", "name", "is_active", "allowed_models", "residency", "monthly_budget", "allowed_ips", *LIMIT_FIELDS,
                  "role", "created_at", "pd_policy", "pd_names", "blocked_terms"]
        read_only_fields = ["id", "name", "is_active", *LIMIT_FIELDS, "role", "created_at"]


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.SlugRelatedField(
        source="user", slug_field="username", queryset=User.objects.filter(is_active=True),
        help_text="The person to add (an existing user); read-only afterwards.",
    )
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "email", "role", "created_at"]
        read_only_fields = ["id", "email", "created_at"]


class MembershipRoleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Membership
        fields = ["role"]
