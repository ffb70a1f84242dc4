from rest_framework import mixins, viewsets
from rest_framework.permissions import IsAuthenticated

from apps.accounts.selectors import staff_verified
from apps.keys.permissions import KeyScope

from .models import UsageRecord
from .serializers import UsageRecordSerializer


class UsageViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The caller's usage records, newest first (staff in a signed-in session, past its code step where XROUTER_STAFF_TOTP asks for one, see everyone's; a key, even a
    staff member's, reads its own user's only: keys travel in scripts and are the easier thing to steal)."""

    serializer_class = UsageRecordSerializer
    permission_classes = [IsAuthenticated, KeyScope]
    required_scope = "usage:read"

    def get_queryset(self):
        qs = UsageRecord.objects.all()
        if not staff_verified(self.request.user) or self.request.auth is not None:
            qs = qs.filter(user_id=self.request.user.id)
        return qs
