"""Migration operations shared by the apps.

`AlterFieldsTogether` applies many `AlterField` / `AlterModelOptions` operations of one migration as
one: the project state is changed by each of them, but the rendered models are rebuilt once for the
whole group instead of once per field. A migration that only relabels (verbose_name, help_text,
choices) hundreds of fields otherwise spends most of `migrate` re-rendering the same related models
again and again (≈ 45 s of a 60 s `migrate` before this). The resulting state, and the SQL (none for
labels), are those of the operations it groups.
"""
from __future__ import annotations

from itertools import groupby

from django.db import migrations


class AlterFieldsTogether(migrations.operations.base.Operation):
    """`AlterField` and `AlterModelOptions` operations applied as one (same state, same SQL)."""

    reversible = True
    reduces_to_sql = True
    GROUPABLE = (migrations.AlterField, migrations.AlterModelOptions)

    def __init__(self, operations):
        self.operations = list(operations)
        for operation in self.operations:
            if not isinstance(operation, self.GROUPABLE):
                raise TypeError(f"AlterFieldsTogether groups AlterField and AlterModelOptions only, not {operation!r}")

    def deconstruct(self):
        return self.__class__.__qualname__, [self.operations], {}

    def state_forwards(self, app_label, state):
        rendered = state.__dict__.pop("apps", None)  # while absent, a state change re-renders nothing
        try:
            for operation in self.operations:
                operation.state_forwards(app_label, state)
        finally:
            if rendered is not None:
                state.__dict__["apps"] = rendered
        if rendered is not None:
            touched = {(app_label, _model_of(operation)) for operation in self.operations}
            state.reload_models(sorted(touched), delay=False)

    def _last_per_field(self):
        """The last AlterField of each field: between the group's states, that is the field's change."""
        last = {}
        for operation in self.operations:
            if isinstance(operation, migrations.AlterField):
                last[(operation.model_name_lower, operation.name_lower)] = operation
        return list(last.values())

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        for operation in self._last_per_field():
            operation.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        for operation in reversed(self._last_per_field()):
            operation.database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self):
        return f"Alter {len(self.operations)} fields and model options together"

    @property
    def migration_name_fragment(self):
        return "alter_fields_together"


def _model_of(operation) -> str:
    return operation.model_name_lower if isinstance(operation, migrations.AlterField) else operation.name_lower


def grouped(operations):
    """The operations with every run of consecutive AlterField/AlterModelOptions as one AlterFieldsTogether."""
    result = []
    for groupable, run in groupby(operations, key=lambda operation: isinstance(operation, AlterFieldsTogether.GROUPABLE)):
        run = list(run)
        result.extend([AlterFieldsTogether(run)] if groupable and len(run) > 1 else run)
    return result
