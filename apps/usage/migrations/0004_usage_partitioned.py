"""PostgreSQL: the raw usage table becomes partitioned by month (apps/usage/partitions.py).
A no-op on SQLite, where the table stays plain."""

from django.db import migrations


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from apps.usage.partitions import partition_table

    with schema_editor.connection.cursor() as cur:
        partition_table(cur, ahead=2)


class Migration(migrations.Migration):

    dependencies = [
        ("usage", "0003_usage_attempt"),
    ]

    # Reversing leaves the table partitioned: it serves the same model either way.
    operations = [migrations.RunPython(partition, migrations.RunPython.noop)]
