"""The audit log in the admin: read-only for everyone (superusers included), filterable, exportable as CSV."""

import csv

from django.contrib import admin
from django.http import StreamingHttpResponse
from django.urls import path

from .models import AuditEvent

EXPORT_MAX = 1_000_000  # rows in one CSV export


class _Echo:
    def write(self, value):
        return value


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("at", "action", "actor", "ip", "target_type", "target")
    list_filter = ("action", "target_type", "at")
    search_fields = ("actor", "target", "target_id", "action")
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    change_list_template = "admin/audit/auditevent/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return {}  # no "delete selected"

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_csv)
        return [path("export.csv", export, name="audit_auditevent_export"), *super().get_urls()]

    def export_csv(self, request):
        """The events the change list shows (its filters and search), oldest first, as CSV."""
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        rows = changelist.get_queryset(request).order_by("at", "id")[:EXPORT_MAX]
        writer = csv.writer(_Echo())
        columns = ["at", "action", "actor_id", "actor", "ip", "target_type", "target_id", "target", "detail"]

        def lines():
            yield writer.writerow(columns)
            for event in rows.iterator(chunk_size=2000):
                yield writer.writerow([_cell(getattr(event, c)) for c in columns])

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
        return response


def _cell(value) -> str:
    """A CSV cell a spreadsheet will not run as a formula (=, +, -, @ first)."""
    text = value.isoformat() if hasattr(value, "isoformat") else ("" if value is None else str(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
