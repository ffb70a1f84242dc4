"""OAuth applications over REST (/api/v1/oauth-applications/): people only (session or OAuth token,
never an API key; a token only reads, in its application's organisation). A member sees the applications
of their organisations; the registrant and the organisation's owners and admins change and delete them
(services.may_manage). The client secret of
a confidential application appears once, in the answer to its creation."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from apps.accounts.models import Membership
from apps.accounts.permissions import SignedInPerson
from apps.keys.selectors import KeyInfo

from .models import Application
from .serializers import ApplicationCreatedSerializer, ApplicationSerializer, ApplicationUpdateSerializer
from .services import application_create, application_delete, application_update


class ApplicationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ApplicationSerializer
    permission_classes = [IsAuthenticated, SignedInPerson]
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        mine = Membership.objects.filter(user=self.request.user).values("organisation_id")
        applications = Application.objects.filter(organisation_id__in=mine).order_by("-created", "-id")
        if isinstance(self.request.auth, KeyInfo):  # an OAuth token: its own organisation's applications only
            applications = applications.filter(organisation_id=self.request.auth.organisation_id)
        return applications

    @extend_schema(request=ApplicationSerializer, responses={201: ApplicationCreatedSerializer})
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            application, secret = application_create(user=request.user, **data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from None
        body = ApplicationSerializer(application).data | ({"client_secret": secret} if secret else {})
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=ApplicationUpdateSerializer, responses=ApplicationSerializer)
    def partial_update(self, request, pk=None):
        application = self.get_object()
        serializer = ApplicationUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            application_update(application, by=request.user, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from None
        return Response(ApplicationSerializer(application).data)

    def destroy(self, request, pk=None):
        application_delete(self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# The OpenAPI description of OAuth tokens, registered with the API (the URLconf imports this module) rather
# than at start: drf-spectacular pulls in DRF's fields, psycopg, requests and pygments, ≈ 25 MiB that a /v1
# worker must not carry.
from . import schema  # noqa: E402, F401
