"""Roles after parameters became revisioned (SETTLEMENT.md §6): operators draft parameter revisions
instead of editing catalogs in place, approvers approve them; both acknowledge failed runs."""
import importlib

from django.db import migrations

roles = importlib.import_module("budget.migrations.0002_roles")


class Migration(migrations.Migration):
    dependencies = [
        ("budget", "0002_roles"),
        ("drg", "0004_parameter_revisions"),
        ("settlement", "0004_parameter_revisions"),
    ]

    operations = [migrations.RunPython(roles.sync_roles, migrations.RunPython.noop)]
