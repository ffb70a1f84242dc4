"""Billing in the management API, for finance systems: statements and spend series of an organisation,
top spenders across organisations.

An organisation's figures are its owners', admins' and billing viewers' (a developer's are not: spend is
not theirs to read), in a signed-in session or with an OAuth token of that organisation's application;
staff with billing.view_statement read any organisation's in a session (after its code step where
XROUTER_STAFF_TOTP asks for one). An OAuth token needs the scope
`usage:read`; API keys are refused (403), as for organisations. Anyone else gets 404, the same
as for an organisation that does not exist.
"""

from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Membership, Organisation
from apps.accounts.permissions import SignedInPerson
from apps.accounts.selectors import staff_verified
from apps.keys.permissions import KeyScope

from . import selectors
from .documents import parse_month, statement_csv

READERS = (Membership.Role.OWNER, Membership.Role.ADMIN, Membership.Role.BILLING_VIEWER)
STATEMENT_PERMISSION = "billing.view_statement"
SERIES_BY = ("provider", "model", "cost_centre", "api_key_id")
MONEY = {"max_digits": 20, "decimal_places": 2}


def _staff_reader(request) -> bool:
    return request.auth is None and staff_verified(request.user) and request.user.has_perm(STATEMENT_PERMISSION)


def readable_organisation(request, organisation_id) -> Organisation:
    """The organisation if the caller may read its spend; Http404 otherwise."""
    organisation = Organisation.objects.filter(id=organisation_id).first()
    if organisation is None:
        raise Http404
    if _staff_reader(request):
        return organisation
    if request.auth is not None and getattr(request.auth, "organisation_id", None) != organisation.id:
        raise Http404  # an OAuth token: its application's organisation only
    if not Membership.objects.filter(organisation=organisation, user=request.user, role__in=READERS).exists():
        raise Http404
    return organisation


def _month(request):
    try:
        return parse_month(request.query_params.get("month", ""))
    except ValueError as exc:
        raise ValidationError({"month": [str(exc)]}) from None


class LineSerializer(serializers.Serializer):
    label = serializers.DictField(child=serializers.CharField(allow_blank=True))
    vat_rate = serializers.DecimalField(max_digits=5, decimal_places=2)
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=20, decimal_places=6, help_text="exact, before rounding")
    amount = serializers.DecimalField(**MONEY, help_text="without VAT")
    vat = serializers.DecimalField(**MONEY)
    total = serializers.DecimalField(**MONEY, help_text="with VAT")


class TotalsSerializer(serializers.Serializer):
    amount = serializers.DecimalField(**MONEY)
    vat = serializers.DecimalField(**MONEY)
    total = serializers.DecimalField(**MONEY)


class StatementSerializer(serializers.Serializer):
    organisation_id = serializers.IntegerField()
    organisation_name = serializers.CharField()
    month = serializers.DateField()
    complete = serializers.BooleanField(help_text="false: the month is not over (month to date)")
    currency = serializers.SerializerMethodField()
    by_model = LineSerializer(many=True)
    by_cost_centre = LineSerializer(many=True)
    totals = TotalsSerializer()

    def get_currency(self, _obj) -> str:
        return "RUB"


MONTH_PARAMETER = OpenApiParameter("month", OpenApiTypes.STR, required=True, description="YYYY-MM (TIME_ZONE)")


class StatementView(APIView):
    """An organisation's monthly statement: lines by model and by cost centre, roubles to the kopeck."""

    permission_classes = [SignedInPerson, KeyScope]
    required_scope = "usage:read"  # an OAuth token's

    @extend_schema(parameters=[MONTH_PARAMETER], responses=StatementSerializer)
    def get(self, request, organisation_id):
        organisation = readable_organisation(request, organisation_id)
        return Response(StatementSerializer(selectors.statement(organisation, _month(request))).data)


class StatementCsvView(APIView):
    """The same statement as CSV."""

    permission_classes = [SignedInPerson, KeyScope]
    required_scope = "usage:read"  # an OAuth token's

    @extend_schema(parameters=[MONTH_PARAMETER], responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, organisation_id):
        organisation = readable_organisation(request, organisation_id)
        statement = selectors.statement(organisation, _month(request))
        response = HttpResponse(statement_csv(statement), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (f'attachment; filename="xrouter-statement-{organisation.id}-'
                                           f'{statement.month:%Y-%m}.csv"')
        return response


class SpendPointSerializer(serializers.Serializer):
    day = serializers.DateField()
    key = serializers.CharField(allow_blank=True, allow_null=True, required=False)
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=20, decimal_places=6)


class SpendView(APIView):
    """Spend per day over the last `days` days (VAT included, exact), optionally per provider, model, cost
    centre or key."""

    permission_classes = [SignedInPerson, KeyScope]
    required_scope = "usage:read"  # an OAuth token's

    @extend_schema(parameters=[
        OpenApiParameter("days", OpenApiTypes.INT, description=f"1–{selectors.MAX_SERIES_DAYS}, default 30"),
        OpenApiParameter("by", OpenApiTypes.STR, enum=list(SERIES_BY))],
        responses=SpendPointSerializer(many=True))
    def get(self, request, organisation_id):
        organisation = readable_organisation(request, organisation_id)
        try:
            days = int(request.query_params.get("days", 30))
        except ValueError:
            raise ValidationError({"days": ["a whole number of days"]}) from None
        if not 1 <= days <= selectors.MAX_SERIES_DAYS:
            raise ValidationError({"days": [f"from 1 to {selectors.MAX_SERIES_DAYS}"]})
        by = request.query_params.get("by") or None
        if by is not None and by not in SERIES_BY:
            raise ValidationError({"by": [f"one of {', '.join(SERIES_BY)}"]})
        rows = selectors.spend_series([organisation.id], days, by=by)
        if by:
            rows = [{**row, "key": None if row[by] is None else str(row[by])} for row in rows]
        return Response(SpendPointSerializer(rows, many=True).data)


class TopSpenderSerializer(serializers.Serializer):
    organisation_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_blank=True)
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=20, decimal_places=6)
    total = serializers.DecimalField(**MONEY)


class TopSpendersView(APIView):
    """Organisations by spend in a month (staff with billing.view_statement, in a signed-in session)."""

    permission_classes = [SignedInPerson, KeyScope]
    required_scope = "usage:read"  # an OAuth token's

    @extend_schema(parameters=[MONTH_PARAMETER], responses=TopSpenderSerializer(many=True))
    def get(self, request):
        if not _staff_reader(request):
            raise PermissionDenied("Top spenders are for staff with the billing.view_statement permission.")
        return Response(TopSpenderSerializer(selectors.top_spenders(_month(request), limit=100), many=True).data)
