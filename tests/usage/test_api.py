"""The management API's usage endpoint and the DRF error boundary (issue 8 review findings)."""

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from apps.common.errors import drf_exception_handler
from apps.keys.services import key_create
from apps.usage.models import UsageRecord


def _row(request_id: str, user) -> UsageRecord:
    from django.utils import timezone

    return UsageRecord.objects.create(request_id=request_id, user_id=user.id, created_at=timezone.now())


@pytest.mark.django_db
def test_a_staff_members_key_reads_only_its_own_users_usage(alice, charlie):
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    _row("alice-row", alice)
    _row("charlie-row", charlie)
    _, plaintext = key_create(user=alice, name="staff-script", scopes=["usage:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    answer = client.get("/api/v1/usage/")
    assert answer.status_code == 200, answer.content
    assert {r["request_id"] for r in answer.json()["results"]} == {"alice-row"}

    client = APIClient()
    client.force_login(alice)  # the same person signed in: staff see every tenant's usage
    assert {"alice-row", "charlie-row"} <= {r["request_id"] for r in client.get("/api/v1/usage/").json()["results"]}


def test_an_unreachable_database_is_a_503_with_retry_after_not_a_500():
    response = drf_exception_handler(OperationalError("connection refused"), {})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.data["error"]["code"] == "service_unavailable"
