"""The management API for organisations and their members (/api/v1/organisations/...).

People only (SignedInPerson: a session, or an OAuth token that reads its application's organisation only;
never an API key). Every query starts from the caller's memberships, so an organisation one is not a member
of answers 404, as if it did not exist; members may read, owners and admins change (the services check the
roles)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from .models import Membership, Organisation
from .permissions import SignedInPerson
from .serializers import MembershipRoleSerializer, MembershipSerializer, OrganisationSerializer
from .services import (
    membership_add,
    membership_remove,
    membership_set_role,
    organisation_update_policy,
    require_manager,
)


def _validation_errors(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.messages)


class OrganisationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                          viewsets.GenericViewSet):
    """The caller's organisations, with their role; owners and admins change the policy (PATCH)."""

    serializer_class = OrganisationSerializer
    permission_classes = [IsAuthenticated, SignedInPerson]
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        # The annotation reuses the filter's join: the caller's own membership row.
        organisations = Organisation.objects.filter(memberships__user=self.request.user)
        if self.request.auth is not None:  # an OAuth token: its application's organisation only
            organisations = organisations.filter(id=self.request.auth.organisation_id)
        return organisations.annotate(my_role=F("memberships__role"))

    def update(self, request, *args, partial=False, **kwargs):
        organisation = self.get_object()
        by = Membership.objects.get(organisation=organisation, user=request.user)
        require_manager(by)  # before reading the body: others learn nothing from its validation
        serializer = self.get_serializer(organisation, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        try:
            organisation_update_policy(organisation, by=by, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise _validation_errors(exc) from None
        return Response(self.get_serializer(organisation).data)


class MembershipViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The members of one of the caller's organisations; owners and admins add, re-role and remove them
    (only owners touch the owner role, and the last owner stays)."""

    serializer_class = MembershipSerializer
    permission_classes = [IsAuthenticated, SignedInPerson]
    lookup_value_regex = r"\d+"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # The caller's own membership: 404 for a non-member, before anything is read or written.
        self.caller = get_object_or_404(Membership.objects.select_related("organisation"),
                                        organisation_id=kwargs["organisation_pk"], user=request.user)
        if request.auth is not None and request.auth.organisation_id != self.caller.organisation_id:
            raise Http404  # an OAuth token: its application's organisation only

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI schema is built without a request
            return Membership.objects.none()
        return Membership.objects.filter(organisation_id=self.caller.organisation_id).select_related("user")

    @extend_schema(request=MembershipSerializer, responses={201: MembershipSerializer})
    def create(self, request, organisation_pk=None):
        require_manager(self.caller)  # before the body: others learn nothing (e.g. which usernames exist)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            membership = membership_add(self.caller.organisation, data["user"], data.get("role", Membership.Role.DEVELOPER),
                                        by=self.caller)
        except DjangoValidationError as exc:
            raise _validation_errors(exc) from None
        return Response(self.get_serializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MembershipRoleSerializer, responses=MembershipSerializer)
    def partial_update(self, request, organisation_pk=None, pk=None):
        membership = self.get_object()
        require_manager(self.caller)
        serializer = MembershipRoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            membership_set_role(membership, serializer.validated_data["role"], by=self.caller)
        except DjangoValidationError as exc:
            raise _validation_errors(exc) from None
        return Response(self.get_serializer(membership).data)

    def destroy(self, request, organisation_pk=None, pk=None):
        membership_remove(self.get_object(), by=self.caller)
        return Response(status=status.HTTP_204_NO_CONTENT)
