import datetime
from decimal import Decimal

from django.db import migrations

# Russian VAT: 20% until 2025-12-31, 22% from 2026-01-01 (the tax law of 2025; see yandexgpt.md §10).
VAT = [(datetime.date(2019, 1, 1), Decimal("20")), (datetime.date(2026, 1, 1), Decimal("22"))]

# The staff groups of accounts 0004: finance reads prices, roll-ups, statements and notices; operators
# change prices, VAT rates and billing settings; auditors read everything.
MODELS = {"vatrate": "VAT rate", "modelprice": "model price", "dailyrollup": "daily rollup",
          "rollupday": "rollup day", "billingsettings": "billing settings", "budgetnotice": "budget notice"}
GROUPS = {
    "finance": [(m, "view") for m in MODELS] + [("dailyrollup", "statement")],
    "operator": [(m, a) for m in ("vatrate", "modelprice", "billingsettings") for a in ("add", "change", "delete", "view")]
    + [("budgetnotice", "view")],
    "support": [("billingsettings", "view"), ("budgetnotice", "view")],
    "auditor": [(m, "view") for m in MODELS] + [("dailyrollup", "statement")],
}


def seed(apps, schema_editor):
    VatRate = apps.get_model("billing", "VatRate")
    for effective_from, rate in VAT:
        VatRate.objects.get_or_create(effective_from=effective_from, defaults={"rate": rate})
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for name, grants in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for model, action in grants:
            content_type, _ = ContentType.objects.get_or_create(app_label="billing", model=model)
            if action == "statement":
                codename, label = "view_statement", "Can view statements, spend and top spenders of every organisation"
            else:
                codename, label = f"{action}_{model}", f"Can {action} {MODELS[model]}"
            permission, _ = Permission.objects.get_or_create(content_type=content_type, codename=codename,
                                                             defaults={"name": label})
            group.permissions.add(permission)


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0001_initial"),
        ("accounts", "0004_staff_groups"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
