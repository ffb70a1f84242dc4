import datetime

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from apps.accounts.models import Organisation

from .models import DEFAULT_SCOPES, ApiKey
from .permissions import KeyScope
from .selectors import KeyInfo, keys_visible_to
from .serializers import ApiKeyCreatedSerializer, ApiKeyRotatedSerializer, ApiKeyRotateSerializer, ApiKeySerializer
from .services import key_create, key_revoke, key_rotate


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The API keys the caller may see (selectors.keys_visible_to): owners and admins every key of their
    organisations, developers their own, billing viewers none. Another's key answers 404.

    Called with a key, it needs the scope keys:manage, sees, revokes and rotates only itself and the keys
    created from it, and what it creates is a subset of that key. Rotating needs the key to be one's own."""

    serializer_class = ApiKeySerializer
    permission_classes = [IsAuthenticated, KeyScope]
    required_scope = "keys:manage"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI schema is built without a request
            return ApiKey.objects.none()
        keys = keys_visible_to(self.request.user)
        auth = self.request.auth
        if isinstance(auth, KeyInfo):
            if auth.kind == "key":
                keys = keys.filter(id__in=ApiKey.subtree_ids(auth.id))
            else:  # an OAuth token: what its user sees, in its application's organisation only
                keys = keys.filter(organisation_id=auth.organisation_id)
        return keys

    @extend_schema(request=ApiKeySerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request):
        serializer = ApiKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        parent = organisation = None
        auth = request.auth
        if isinstance(auth, KeyInfo) and auth.kind == "key":
            parent = ApiKey.objects.filter(id=auth.id).first()
            if parent is None:  # deleted since it authenticated: never fall back to a person's rights
                raise PermissionDenied("The key making this request no longer exists.")
        elif isinstance(auth, KeyInfo):  # an OAuth token: keys in its application's organisation, within its scopes
            organisation = Organisation.objects.get(id=auth.organisation_id)
            scopes = serializer.validated_data.setdefault("scopes", [s for s in DEFAULT_SCOPES if s in auth.scopes])
            if not set(scopes) <= auth.scopes:
                raise PermissionDenied("A key made with an OAuth token gets no scope the token lacks.")
        try:
            key, plaintext = key_create(user=request.user, parent=parent, organisation=organisation,
                                        issued_by=request.user, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.messages) from None
        data = ApiKeySerializer(key).data | {"key": plaintext}
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        key = self.get_object()
        key_revoke(key)
        return Response(ApiKeySerializer(key).data)

    @extend_schema(request=ApiKeyRotateSerializer, responses={201: ApiKeyRotatedSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        """A sibling with the same rights and a new secret (shown once); the old key works for grace_seconds more."""
        key = self.get_object()
        body = ApiKeyRotateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            new, plaintext = key_rotate(key, grace=datetime.timedelta(seconds=body.validated_data["grace_seconds"]),
                                        by=request.user)
        except DjangoValidationError as exc:
            raise ValidationError(exc.messages) from None
        data = ApiKeySerializer(new).data | {"key": plaintext, "replaces": ApiKeySerializer(key).data}
        return Response(data, status=status.HTTP_201_CREATED)


# The OpenAPI description of API keys, registered with the API (as apps.oauth.api does: not at start).
from . import schema  # noqa: E402, F401
