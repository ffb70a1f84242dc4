from django.db import migrations

# (app_label, model, verbose name) as of this migration.
MODELS = {
    "user": ("accounts", "user", "user"),
    "organisation": ("accounts", "organisation", "organisation"),
    "membership": ("accounts", "membership", "membership"),
    "apikey": ("keys", "apikey", "api key"),
    "usagerecord": ("usage", "usagerecord", "usage record"),
    "provider": ("providers", "provider", "provider"),
    "credential": ("providers", "credential", "credential"),
    "providermodel": ("providers", "providermodel", "provider model"),
    "healthcheck": ("providers", "healthcheck", "health check"),
    "alias": ("routing", "alias", "alias"),
    "routingrule": ("routing", "routingrule", "routing rule"),
    "logentry": ("admin", "logentry", "log entry"),
    "group": ("auth", "group", "group"),
}
ALL = ("add", "change", "delete", "view")
TENANTS = ("user", "organisation", "membership", "apikey", "usagerecord")
CONFIGURATION = ("provider", "credential", "providermodel", "healthcheck", "alias", "routingrule")

# Nobody here gets accounts.change_user: the user form edits is_superuser and groups, so it is a
# superuser's right. Operators (de)activate organisations; superusers manage people.
GROUPS = {
    # Runs the gateway: providers, routing, keys (also keys.issue_for_others, from keys 0002), organisations.
    "operator": [(m, a) for m in (*CONFIGURATION, "apikey", "organisation", "membership") for a in ALL]
    + [("user", "view"), ("usagerecord", "view")],
    # Answers customers: sees their accounts, keys and usage, and may revoke a leaked key.
    "support": [(m, "view") for m in (*TENANTS, "provider", "providermodel", "healthcheck", "alias", "routingrule")]
    + [("apikey", "change")],
    # Usage, prices and organisations across tenants, read-only.
    "finance": [("usagerecord", "view"), ("provider", "view"), ("providermodel", "view"), ("organisation", "view")],
    # Reads everything, the admin's change log included; changes nothing.
    "auditor": [(m, "view") for m in MODELS],
}


def create_staff_groups(apps, schema_editor):
    """Permission rows are normally made after migrating (post_migrate); make the ones the groups need here."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for name, grants in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for model, action in grants:
            app_label, model_name, verbose_name = MODELS[model]
            content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model_name)
            permission, _ = Permission.objects.get_or_create(
                content_type=content_type, codename=f"{action}_{model_name}",
                defaults={"name": f"Can {action} {verbose_name}"},
            )
            group.permissions.add(permission)


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0003_memberships_and_policy"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        # Reversing keeps the groups: people may have been put in them since.
        migrations.RunPython(create_staff_groups, migrations.RunPython.noop),
    ]
