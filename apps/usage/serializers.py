from rest_framework import serializers

from .models import UsageRecord


class UsageRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = UsageRecord
        exclude = ["id"]
