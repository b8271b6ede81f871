"""A database of the layout before the exchange/ and demo/ apps (whose migrations ended at OLD_STATE)
migrates forward to today's models without losing a row, and the bulk commands then reproduce the
worked example exactly.

The code at hand writes today's schema only, so the worked example is loaded with it and the database
is then migrated back to OLD_STATE (every app that did not exist then is unapplied): what remains is
what an installation of that layout holds. Migrating forward from there must keep every row and give
the spec's files. OLD_STATE names fixed migrations, so the test keeps meaning the same upgrade when
later migrations are added (they must stay reversible: RunPython with a reverse, even a no-op).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.golden.bulk import REGION, YEAR, assert_reproduces, clear_and_export_year, load_worked_example

# The latest migration of each app before exchange/ and demo/ were split out of drg and settlement.
OLD_STATE = {
    "budget": "0002_roles",
    "drg": "0003_correction_request_late_case",
    "incentives": "0003_default_rules",
    "settlement": "0003_case_result_run_without_db_constraint",
}


def _project_labels(loader) -> set[str]:
    """This project's apps that have migrations (not Django's or the installed packages')."""
    return {
        config.label for config in apps.get_app_configs()
        if config.label in loader.migrated_apps and "site-packages" not in str(Path(config.path).resolve())
    }


def _migrate(targets: list[tuple[str, str | None]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)  # a fresh loader sees what is applied now


def _row_counts(labels: set[str]) -> dict[str, int]:
    tables = [t for t in connection.introspection.table_names() if t.split("_", 1)[0] in labels]
    with connection.cursor() as cursor:
        counts = {}
        for table in sorted(tables):
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


# tables a later migration replaced: how the replacement's content is counted
REPLACED = {"settlement_caseresult": "SELECT COALESCE(SUM(cases), 0) FROM settlement_caseresultblock"}


def _replaced_counts(before: dict[str, int]) -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for table, sql in REPLACED.items():
            if table in before:
                cursor.execute(sql)
                counts[table] = cursor.fetchone()[0]
    return counts


def _draft_run_results():
    """A draft annual run of the employee pool (its case results go through the migrations both ways)."""
    from drg.models import Region
    from settlement.services import clearing_run_start

    run = clearing_run_start(region=Region.objects.get(code=REGION), fund="employee", year=YEAR, user=None)
    return run


def _results(run) -> list[tuple]:
    from settlement.selectors import run_case_results_frame

    return list(run_case_results_frame(run=run).astype(object).itertuples(index=False, name=None))


def _case_rows(bundle: Path) -> int:
    return len((bundle / "cases.csv").read_text(encoding="utf-8-sig").strip().splitlines()) - 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
def test_a_database_of_the_previous_layout_migrates_forward_without_loss(worked_bundle, worked_expected, tmp_path):
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    labels = _project_labels(executor.loader)
    assert set(OLD_STATE) <= labels
    old_targets = [(label, OLD_STATE.get(label)) for label in sorted(labels)]
    load_worked_example(worked_bundle)
    draft = _draft_run_results()
    results_before = _results(draft)
    try:
        executor = _migrate(old_targets)
        applied = executor.loader.applied_migrations
        for label in labels:
            mine = {name for app, name in applied if app == label}
            expected = {name for app, name in executor.loader.graph.forwards_plan((label, OLD_STATE[label]))
                        if app == label} if label in OLD_STATE else set()
            assert mine == expected, f"{label} is not at the previous layout's state"
        before = _row_counts(set(OLD_STATE))
        assert before["drg_case"] == _case_rows(worked_bundle)
        assert before["settlement_caseresult"] == len(results_before) > 0

        executor = _migrate(latest)
    finally:
        if MigrationExecutor(connection).migration_plan(latest):
            _migrate(latest)  # leave the test database as the other tests expect it
    assert executor.migration_plan(latest) == []
    after = {**_row_counts(set(OLD_STATE)), **_replaced_counts(before)}
    assert {table: after.get(table) for table in before} == before
    assert _results(draft) == results_before  # the case results, value for value, after two conversions
    draft.delete()  # the year is cleared by the bulk commands below, as the spec's files expect
    out = tmp_path / "out"

    clear_and_export_year(out)

    assert_reproduces(out, worked_expected)
