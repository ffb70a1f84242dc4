from django.contrib import admin

from .models import Alias


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    list_display = ["name", "target", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["name", "target"]
