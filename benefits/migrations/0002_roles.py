"""The bureau's roles on the benefits records (see budget/migrations/0002_roles.py): every role views
every benefits record and its history; the operator lists patients and changes their category.
Claims, corrections, the catalog and the benefit parameters are written by services and bundles only."""
from django.db import migrations

OPERATOR = ("add_patient", "change_patient")
ROLES = ("operator", "approver", "auditor")


def grant(apps, schema_editor) -> None:
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = list(Permission.objects.filter(content_type__app_label="benefits", codename__startswith="view_"))
    operator = list(Permission.objects.filter(content_type__app_label="benefits", codename__in=OPERATOR))
    for name in ROLES:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*view, *(operator if name == "operator" else ()))


def revoke(apps, schema_editor) -> None:
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(name__in=ROLES):
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="benefits"))


class Migration(migrations.Migration):
    # after the groups exist (budget's roles migrations); their re-syncs touch only the apps below
    dependencies = [("benefits", "0001_initial"), ("budget", "0003_roles_parameter_revisions")]
    operations = [migrations.RunPython(grant, revoke)]
