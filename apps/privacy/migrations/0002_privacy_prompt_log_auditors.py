from django.db import migrations

# The staff groups of accounts 0004: auditors read everything, the (masked) prompt log included; nobody
# else on the staff reads prompts.


def grant(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="privacy", model="promptlog")
    permission, _ = Permission.objects.get_or_create(content_type=content_type, codename="view_promptlog",
                                                     defaults={"name": "Can view prompt log"})
    Group.objects.get_or_create(name="auditor")[0].permissions.add(permission)


class Migration(migrations.Migration):

    dependencies = [
        ("privacy", "0001_privacy_prompt_log"),
        ("accounts", "0004_staff_groups"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
