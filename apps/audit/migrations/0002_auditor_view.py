from django.db import migrations


def grant(apps, schema_editor):
    """The auditor staff group (accounts 0004) reads the audit log; nobody may change it."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="audit", model="auditevent")
    permission, _ = Permission.objects.get_or_create(content_type=content_type, codename="view_auditevent",
                                                     defaults={"name": "Can view audit event"})
    group = Group.objects.filter(name="auditor").first()
    if group is not None:
        group.permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("accounts", "0004_staff_groups"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
