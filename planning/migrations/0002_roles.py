"""Planning permissions for the bureau's roles (docs/admin.md, docs/planning.md): every role views
the planning records; operators compute rate-settings, adopt them (as parameter revision drafts, which
approvers decide in drg's revision screens) and run scenarios."""
from django.db import migrations

OPERATOR = ("add_ratesetting", "add_scenario", "change_scenario")
APPROVER = ()
VIEW = ("view_ratesetting", "view_scenario", "view_scenarioline", "view_forecast", "view_forecastline", "view_season")


def add_permissions(apps, schema_editor) -> None:
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def perms(names):
        return list(Permission.objects.filter(content_type__app_label="planning", codename__in=names))

    for name, extra in (("operator", OPERATOR), ("approver", APPROVER), ("auditor", ())):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*perms(VIEW + extra))


def remove_permissions(apps, schema_editor) -> None:
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    planning = Permission.objects.filter(content_type__app_label="planning")
    for group in Group.objects.filter(name__in=("operator", "approver", "auditor")):
        group.permissions.remove(*planning)


class Migration(migrations.Migration):
    dependencies = [("planning", "0001_initial"), ("budget", "0003_roles_parameter_revisions")]
    operations = [migrations.RunPython(add_permissions, remove_permissions)]
