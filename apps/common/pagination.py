"""Cursor pagination for every list of the management API (REST_FRAMEWORK's default).

Cursors stay stable while rows are inserted (usage grows all the time) and cost an index range scan
however deep the client pages, where an offset would rescan every skipped row."""

from rest_framework.pagination import CursorPagination


class NewestFirstCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_ordering(self, request, queryset, view):
        # Newest first by created_at where the model has it (indexed on usage), else by id; id breaks ties.
        names = {f.name for f in queryset.model._meta.concrete_fields}
        return ("-created_at", "-id") if "created_at" in names else ("-id",)
