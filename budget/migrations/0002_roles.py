"""The bureau's three roles as Django groups, with the least permissions each needs (docs/admin.md).

- operator 经办: enters and corrects data (drafts revisions of catalogs and parameters, claims, adjustments, evaluations,
  special reviews, correction requests, incentive inputs and rules), issues/revokes hospital API keys,
  drafts budgets, computes incentive payouts, starts clearing runs.
- approver 审核: decides what operators prepared — approves budgets, reviews special reviews, itemized
  claims, correction requests, approves point adjustments, evaluations and incentive payouts,
  approves parameter revisions, finalizes clearing runs. Both acknowledge failed runs. Maker-checker is enforced by the services: nobody decides what they made.
- auditor 审计: views everything, including the change history; changes nothing.

Every role views every record of the four apps and its history. The groups are synchronised, not just
created: running `sync_roles` again (a later migration may import and call it after adding models)
sets each group's permissions on the four apps to exactly what is listed here, for the models that
exist then; permissions on the apps above them (their own roles migrations) are left as they are.
"""
from django.db import migrations

APPS = ("drg", "budget", "settlement", "incentives")

# model -> actions on top of "view" (which every role has on every model of APPS, history included)
OPERATOR_MODEL_ACTIONS = {
    "drg": {
        "region": ("add", "change"),
        # institutions, groups, coefficients, TCM equivalents and the payment scheme change only by an
        # approved parameter revision (drg/revisions.py): operators draft revisions
        "parameterrevision": ("add", "change"),
        "specialreview": ("add", "change"),
        "correctionrequest": ("add", "change"),
        "institutioncredential": ("add", "change"),  # issue and revoke hospital API keys (drg/api/admin.py)
    },
    "budget": {"budget": ("add", "change")},
    "settlement": {
        "itemizedclaim": ("add", "change"),
        "pointadjustment": ("add", "change"),
        "evaluation": ("add", "change"),
    },
    "incentives": {
        "chronicenrollment": ("add", "change"),
        "tcmworkload": ("add", "change"),
        "hospiceservice": ("add", "change"),
        "screening": ("add", "change"),
        "incentiverule": ("add", "change"),
        "incentivebudget": ("add", "change"),
        "payout": ("add",),
    },
}
OPERATOR_EXTRA = {"settlement": ("start_clearingrun", "acknowledge_clearingrun")}

APPROVER_EXTRA = {
    "budget": ("approve_budget",),
    "drg": ("review_specialreview", "review_correctionrequest", "approve_parameterrevision"),
    "settlement": ("review_itemizedclaim", "approve_pointadjustment", "approve_evaluation", "finalize_clearingrun",
                   "acknowledge_clearingrun"),
    "incentives": ("approve_payout", "pay_payout"),
}

AUDITOR_EXTRA = {"auth": ("view_user", "view_group")}

ROLE_NAMES = ("operator", "approver", "auditor")


def _ensure_permissions(apps) -> None:
    """Permissions are normally created after `migrate`; create them now so the groups can hold them."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None


def sync_roles(apps, schema_editor) -> None:
    _ensure_permissions(apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def codenames(app_label: str, names) -> set[int]:
        return set(Permission.objects.filter(content_type__app_label=app_label, codename__in=list(names)).values_list("pk", flat=True))

    view_all = set(
        Permission.objects.filter(content_type__app_label__in=APPS, codename__startswith="view_").values_list("pk", flat=True)
    )
    operator = set(view_all)
    for app_label, models in OPERATOR_MODEL_ACTIONS.items():
        operator |= codenames(app_label, [f"{action}_{model}" for model, actions in models.items() for action in actions])
    for app_label, names in OPERATOR_EXTRA.items():
        operator |= codenames(app_label, names)

    approver = set(view_all)
    for app_label, names in APPROVER_EXTRA.items():
        approver |= codenames(app_label, names)

    auditor = set(view_all)
    for app_label, names in AUDITOR_EXTRA.items():
        auditor |= codenames(app_label, names)

    # Only the permissions of APPS (and auth) are synchronised: the apps above (planning, monitoring,
    # benefits) grant their own in their roles migrations, and a re-sync here leaves those alone.
    managed = Permission.objects.filter(content_type__app_label__in=(*APPS, "auth"))
    for name, permission_ids in (("operator", operator), ("approver", approver), ("auditor", auditor)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.remove(*managed.exclude(pk__in=permission_ids))
        group.permissions.add(*Permission.objects.filter(pk__in=permission_ids))


def drop_roles(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_NAMES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("budget", "0001_initial"),
        ("drg", "0001_initial"),
        ("settlement", "0001_initial"),
        ("incentives", "0003_default_rules"),
    ]

    operations = [migrations.RunPython(sync_roles, drop_roles)]
