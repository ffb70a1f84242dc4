import datetime
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.accounts.models import Membership, Organisation, User
from apps.usage.models import UsageRecord

MSK = timezone.get_fixed_timezone(180)  # Europe/Moscow (TIME_ZONE): UTC+3 all year


def at(day: datetime.date, hour=12, minute=0) -> datetime.datetime:
    """An instant on a calendar day of TIME_ZONE."""
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=MSK)


def usage(organisation, cost, when, *, key=None, provider="yandexgpt", model="yandexgpt", prompt=100, completion=50,
          cached=0, reasoning=0, status="ok") -> UsageRecord:
    return UsageRecord.objects.create(
        request_id=uuid.uuid4().hex, organisation_id=organisation.id if organisation else None,
        api_key_id=key.id if key else None, key_prefix=key.prefix if key else "", provider=provider, model=model,
        prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached, reasoning_tokens=reasoning,
        cost=Decimal(cost), created_at=when, status=status)


@pytest.fixture
def org(db):
    """An organisation of this test's own (the session gateway commits usage for acme)."""
    return Organisation.objects.create(name=f"billing-{uuid.uuid4().hex[:8]}")


def member(organisation, role, username=None) -> User:
    user = User.objects.create_user(username=username or f"u-{uuid.uuid4().hex[:8]}", password="x" * 12,
                                    email=f"{uuid.uuid4().hex[:8]}@example.com", organisation=organisation)
    Membership.objects.create(user=user, organisation=organisation, role=role)
    return user
