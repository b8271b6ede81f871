"""The bureau roles' permissions on monitoring records (added to the groups budget's roles migration
made; docs/monitoring.md): every role views them; the operator edits screening parameters (drafts),
reviews findings and proposes adjustments, deductions and scores; the approver approves parameter
sets, deductions and scores (and, in settlement, the point adjustments)."""
from django.db import migrations

OPERATOR = ("add_screeningparameterset", "change_screeningparameterset", "review_finding", "add_evaluationscore", "change_evaluationscore", "add_evaluationdeduction")
APPROVER = ("approve_screeningparameterset", "approve_evaluationdeduction", "approve_evaluationscore", "review_finding")


def grant(apps, schema_editor) -> None:
    from django.contrib.auth.management import create_permissions

    config = apps.get_app_config("monitoring")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    mine = Permission.objects.filter(content_type__app_label="monitoring")
    view = list(mine.filter(codename__startswith="view_"))
    for name, extra in (("operator", OPERATOR), ("approver", APPROVER), ("auditor", ())):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*view, *mine.filter(codename__in=extra))


def revoke(apps, schema_editor) -> None:
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group in Group.objects.filter(name__in=("operator", "approver", "auditor")):
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="monitoring"))


class Migration(migrations.Migration):
    # after the groups exist (budget's roles migrations); their re-syncs touch only the apps below
    dependencies = [("monitoring", "0001_initial"), ("budget", "0003_roles_parameter_revisions")]

    operations = [migrations.RunPython(grant, revoke)]
