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
from .selectors import KeyInfo
from .serializers import ApiKeyCreatedSerializer, ApiKeySerializer
from .services import key_create, key_revoke


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's own API keys. Every query is scoped to request.user: nobody sees another's keys.

    Called with a key, it needs the scope keys:manage, sees and revokes only itself and the keys
    created from it, and what it creates is a subset of that key."""

    serializer_class = ApiKeySerializer
    permission_classes = [IsAuthenticated, KeyScope]
    required_scope = "keys:manage"

    def get_queryset(self):
        keys = ApiKey.objects.filter(user=self.request.user)
        auth = self.request.auth
        if isinstance(auth, KeyInfo):
            if auth.kind == "key":
                keys = keys.filter(id__in=ApiKey.subtree_ids(auth.id))
            else:  # an OAuth token: the user's keys in its application's organisation
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
