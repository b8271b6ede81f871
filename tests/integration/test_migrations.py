"""The migrations describe today's models, and grouped field changes give the state of the operations they group."""
from __future__ import annotations

import copy
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import migrations
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState

from common.migration_ops import AlterFieldsTogether, grouped


@pytest.mark.django_db
def test_the_models_need_no_new_migration():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)  # SystemExit(1) when a migration is missing
    assert "No changes detected" in out.getvalue()


def _described(state: ProjectState) -> dict:
    """Every model of the state: its fields (deconstructed, labels included) and its options."""
    return {
        key: ({name: field.deconstruct()[1:] for name, field in model.fields.items()}, model.options)
        for key, model in state.models.items()
    }


def _plan(loader: MigrationLoader) -> list[tuple[str, str]]:
    plan: list[tuple[str, str]] = []
    for leaf in loader.graph.leaf_nodes():
        plan.extend(key for key in loader.graph.forwards_plan(leaf) if key not in plan)
    return plan


def _assert_rendered_as_stated(state: ProjectState, app_label: str, where) -> None:
    """The rendered models of the app carry the labels of their model states (what `migrate` uses)."""
    for (label, model_name), model_state in state.models.items():
        if label != app_label:
            continue
        model = state.apps.get_model(label, model_name)
        local = {f.name: str(f.verbose_name) for f in model._meta.local_fields}
        stated = {name: str(field.verbose_name or name.replace("_", " "))
                  for name, field in model_state.fields.items() if name in local}
        assert local == stated, (where, model_name)
        if "verbose_name" in model_state.options:
            assert str(model._meta.verbose_name) == str(model_state.options["verbose_name"]), (where, model_name)


def _state(loader: MigrationLoader, *, ungroup: bool, rendered: bool = False) -> ProjectState:
    state = ProjectState(real_apps=loader.unmigrated_apps)
    for key in _plan(loader):
        migration = copy.copy(loader.graph.nodes[key])
        is_grouped = any(isinstance(op, AlterFieldsTogether) for op in migration.operations)
        if rendered and is_grouped:
            state.apps  # rendered, as `migrate` keeps it: grouped changes must re-render what they touch
        if ungroup:
            migration.operations = [inner for op in migration.operations
                                    for inner in (op.operations if isinstance(op, AlterFieldsTogether) else [op])]
        state = migration.mutate_state(state, preserve=False)
        if rendered and is_grouped:
            _assert_rendered_as_stated(state, key[0], key)
    return state


def test_grouped_field_changes_give_the_same_state_as_one_by_one():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    grouped_migrations = [key for key, migration in loader.disk_migrations.items()
                          if any(isinstance(op, AlterFieldsTogether) for op in migration.operations)]
    assert len(grouped_migrations) >= 10  # the label migrations of every app
    assert _described(_state(loader, ungroup=False, rendered=True)) == _described(_state(loader, ungroup=True))


def test_grouping_keeps_other_operations_in_place():
    field = migrations.AlterField("m", "a", None)
    other = migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop)
    options = migrations.AlterModelOptions("m", {"verbose_name": "x"})
    result = grouped([field, options, other, field])
    assert [type(op) for op in result] == [AlterFieldsTogether, migrations.RunPython, migrations.AlterField]
    assert result[0].operations == [field, options]
    with pytest.raises(TypeError):
        AlterFieldsTogether([other])
