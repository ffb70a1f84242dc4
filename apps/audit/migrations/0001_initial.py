from django.db import migrations, models

# PostgreSQL refuses UPDATE and DELETE on the table whoever asks (a raw query, a DBA's slip, the ORM
# bypassed). TRUNCATE stays possible for the table's owner: test databases are flushed with it.
TRIGGER = """
CREATE OR REPLACE FUNCTION audit_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_auditevent_append_only BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_auditevent_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS audit_auditevent_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_auditevent_append_only();
"""


def add_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="AuditEvent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("action", models.CharField(db_index=True, help_text='e.g. "login.failed", "key.revoked".', max_length=64)),
                ("actor_id", models.BigIntegerField(blank=True, help_text="The acting user's id (empty: the system).", null=True)),
                ("actor", models.CharField(blank=True, help_text="The actor as it was named then.", max_length=150)),
                ("ip", models.GenericIPAddressField(blank=True, help_text="The client address (trusted proxies resolved).", null=True)),
                ("target_type", models.CharField(blank=True, max_length=64)),
                ("target_id", models.CharField(blank=True, max_length=64)),
                ("target", models.CharField(blank=True, help_text="The target as it was named then.", max_length=200)),
                ("detail", models.JSONField(blank=True, default=dict, help_text="What changed; never a secret.")),
            ],
            options={"ordering": ["-at", "-id"], "indexes": [models.Index(fields=["target_type", "target_id"], name="audit_audit_target__59bbff_idx")]},
        ),
        migrations.RunPython(add_trigger, drop_trigger),
    ]
