from rest_framework import serializers

from apps.accounts.models import Organisation

from .models import Application


class CallersOrganisation(serializers.PrimaryKeyRelatedField):
    """One of the caller's organisations (another's id reads as unknown)."""

    def get_queryset(self):
        return Organisation.objects.filter(memberships__user=self.context["request"].user)


class ApplicationSerializer(serializers.ModelSerializer):
    organisation = CallersOrganisation()
    client_type = serializers.ChoiceField(choices=[Application.CLIENT_PUBLIC, Application.CLIENT_CONFIDENTIAL])
    authorization_grant_type = serializers.ChoiceField(
        choices=[Application.GRANT_AUTHORIZATION_CODE, Application.GRANT_CLIENT_CREDENTIALS],
        default=Application.GRANT_AUTHORIZATION_CODE)
    redirect_uris = serializers.CharField(max_length=2000, required=False, allow_blank=True,
                                          help_text="Space separated: https, or http on a loopback address.")

    class Meta:
        model = Application
        fields = ["id", "name", "organisation", "client_id", "client_type", "authorization_grant_type", "redirect_uris",
                  "user", "created", "updated"]
        read_only_fields = ["id", "client_id", "user", "created", "updated"]
        extra_kwargs = {"name": {"required": True, "allow_blank": False, "max_length": 255}}


class ApplicationUpdateSerializer(serializers.ModelSerializer):
    redirect_uris = serializers.CharField(max_length=2000, required=False, allow_blank=True)

    class Meta:
        model = Application
        fields = ["name", "redirect_uris"]
        extra_kwargs = {"name": {"allow_blank": False, "max_length": 255}}


class ApplicationCreatedSerializer(ApplicationSerializer):
    client_secret = serializers.CharField(read_only=True, help_text="Confidential clients: the secret, shown once.")

    class Meta(ApplicationSerializer.Meta):
        fields = ApplicationSerializer.Meta.fields + ["client_secret"]
