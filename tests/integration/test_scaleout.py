"""Scale-out of a clearing run (docs/scaleout.md): the pool valued in chunks of institutions by a
Celery chord (eager here) gives the single-process run's numbers to the cent, the same case results
and the same fingerprint; chunks are idempotent and a failing chunk fails the run cleanly."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from drg.models import Region
from exchange.synthetic import generate_bundle
from settlement import scaleout, selectors, services
from settlement.choices import RunStatus
from settlement.models import CaseResultBlock, ClearingRun, InstitutionLine
from tests.results_helpers import result_count, result_tuples
from settlement.tasks import clearing_run_value_chunk

pytestmark = pytest.mark.django_db

REGION, YEAR = "339901", 2025
CASE_FIELDS = ("case_id", "institution_id", "valuation_group", "coefficient", "ratio", "category", "base_points",
               "readmission_halved", "points_before_readmission", "points")
LINE_FIELDS = tuple(f.attname for f in InstitutionLine._meta.concrete_fields if f.attname not in ("id", "run_id"))


@pytest.fixture(scope="module")
def generated_bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scaleout-bundle")
    generate_bundle(out=out, cases=3000, seed=7, year=YEAR)
    return out


@pytest.fixture
def region(generated_bundle):
    call_command("load_bundle", str(generated_bundle), stdout=open("/dev/null", "w"))
    return Region.objects.get(code=REGION)


def case_rows(run: ClearingRun) -> list[tuple]:
    return result_tuples(run, CASE_FIELDS)


def line_rows(run: ClearingRun) -> list[tuple]:
    return list(InstitutionLine.objects.filter(run=run).order_by("institution_id").values_list(*LINE_FIELDS))


def assert_same_results(chunked: ClearingRun, single: ClearingRun) -> None:
    assert chunked.status == single.status == RunStatus.DRAFT, chunked.error or single.error
    assert line_rows(chunked) == line_rows(single)
    assert case_rows(chunked) == case_rows(single)
    assert chunked.totals == single.totals
    assert chunked.parameters == single.parameters
    assert chunked.case_count == single.case_count == result_count(run=chunked)
    assert chunked.fingerprint == single.fingerprint


# --- the same numbers either way --------------------------------------------------------------------

@pytest.mark.parametrize("fund", ["employee", "resident"])
def test_an_annual_clearing_in_three_chunks_equals_the_single_process_one_to_the_cent(region, fund):
    single = services.clearing_run_start(region=region, fund=fund, year=YEAR, user=None)
    chunked = services.clearing_run_start(region=region, fund=fund, year=YEAR, user=None, chunks=3)

    assert_same_results(chunked, single)
    categories = {row[0] for row in result_tuples(chunked, ["category"])}
    assert any(row[0] for row in result_tuples(chunked, ["readmission_halved"])) and {"high", "low", "normal"} <= categories
    assert "chunks" not in single.timings
    assert [c["chunk"] for c in chunked.timings["chunks"]] == [0, 1, 2]
    assert sum(c["cases"] for c in chunked.timings["chunks"]) == single.case_count
    assert {"plan", "load", "value", "store", "clear", "reduce_store", "wall", "total"} <= set(chunked.timings)
    assert all(c["worker"] for c in chunked.timings["chunks"])
    assert chunked.task_id and not single.task_id


def test_a_monthly_run_in_chunks_equals_the_single_process_one(region):
    for month in range(1, 6):  # monthly runs follow each other: June after May is finalized
        services.clearing_run_finalize(run=services.clearing_run_start(region=region, fund="employee", year=YEAR, month=month, user=None), system=True)
    single = services.clearing_run_start(region=region, fund="employee", year=YEAR, month=6, user=None)
    chunked = services.clearing_run_start(region=region, fund="employee", year=YEAR, month=6, user=None, chunks=4)

    assert_same_results(chunked, single)


def test_the_worked_example_in_chunks_gives_the_spec_numbers(worked_bundle):
    call_command("load_bundle", str(worked_bundle), stdout=open("/dev/null", "w"))
    region = Region.objects.get(code="331083")
    single = services.clearing_run_start(region=region, fund="employee", year=2025, user=None)
    chunked = services.clearing_run_start(region=region, fund="employee", year=2025, user=None, chunks=3)

    assert_same_results(chunked, single)
    assert chunked.totals["distributed"] == "303459.57" and chunked.totals["point_value"] == "115.6390"
    assert len(chunked.timings["chunks"]) == 3  # three institutions, one each


def test_rerunning_unchanged_inputs_gives_the_same_fingerprint_however_the_pool_is_split(region):
    fingerprints = {
        services.clearing_run_start(region=region, fund="employee", year=YEAR, user=None, chunks=chunks).fingerprint
        for chunks in (None, 1, 2, 5, 1000)
    }
    assert len(fingerprints) == 1


def test_a_pool_at_the_threshold_is_split_by_itself(region, settings):
    cases = sum(selectors.pool_case_counts(region_id=region.pk, fund="employee", start=dt.date(YEAR, 1, 1), end=dt.date(YEAR, 12, 31)).values())
    settings.DRG_SCALEOUT_MIN_CASES = cases
    settings.DRG_SCALEOUT_CHUNK_CASES = cases // 3 + 1

    run = services.clearing_run_start(region=region, fund="employee", year=YEAR, user=None)

    assert run.status == RunStatus.DRAFT and len(run.timings["chunks"]) == 3
    settings.DRG_SCALEOUT_MIN_CASES = cases + 1
    assert "chunks" not in services.clearing_run_start(region=region, fund="employee", year=YEAR, user=None).timings


def test_the_clear_command_splits_with_chunks_and_shows_each_chunk(region, capsys):
    call_command("clear", region=REGION, fund="employee", year=YEAR, chunks=2)

    out = capsys.readouterr().out
    assert ": draft" in out and "chunk 0:" in out and "chunk 1:" in out
    assert ClearingRun.objects.get().timings["chunks"][1]["cases"] > 0


# --- idempotency and failures ------------------------------------------------------------------------

def _running_run_with_plan(region, chunks: int) -> tuple[ClearingRun, list[dict]]:
    """The state right after dispatch: the run claimed, its chunk plan recorded."""
    counts = selectors.pool_case_counts(region_id=region.pk, fund="employee", start=dt.date(YEAR, 1, 1), end=dt.date(YEAR, 12, 31))
    layout = scaleout.plan_chunks(counts, chunks=chunks, min_cases=0, chunk_cases=1)
    run = ClearingRun.objects.create(region=region, fund="employee", year=YEAR, kind="annual", status=RunStatus.RUNNING,
                                     started_at=timezone.now(), task_id="dispatched", timings={"chunks": layout})
    return run, layout


def _chunk(run: ClearingRun, entry: dict) -> dict:
    return clearing_run_value_chunk.apply(kwargs={"run_id": run.pk, "chunk_no": entry["chunk"],
                                                  "institution_ids": entry["institutions"]}).get()


def test_a_redelivered_chunk_replaces_its_case_results_and_never_doubles_them(region):
    single = services.clearing_run_start(region=region, fund="employee", year=YEAR, user=None)
    run, layout = _running_run_with_plan(region, chunks=3)

    results = [_chunk(run, entry) for entry in layout]
    results.append(_chunk(run, layout[1]))  # chunk 1 delivered again (retry / worker lost)
    assert result_count(run=run) == single.case_count
    run = services.clearing_run_reduce(run_id=run.pk, results=results)

    assert_same_results(run, single)
    assert _chunk(run, layout[0]) == {"chunk": 0, "skipped": RunStatus.DRAFT}  # a late copy after the reduce
    assert result_count(run=run) == single.case_count


def test_a_redelivered_run_task_does_not_hand_the_chunks_out_again(region):
    run, _ = _running_run_with_plan(region, chunks=2)

    assert services.clearing_run_execute(run_id=run.pk, chunks=2).status == RunStatus.RUNNING
    assert result_count(run=run) == 0


def test_a_failing_chunk_marks_the_run_failed_and_leaves_no_case_results(region, monkeypatch):
    original, calls = services._results_write, []

    def fail_on_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(services, "_results_write", fail_on_the_second_chunk)
    with pytest.raises(RuntimeError, match="disk full"):
        services.clearing_run_start(region=region, fund="employee", year=YEAR, user=None, chunks=3)

    run = ClearingRun.objects.get()
    assert run.status == RunStatus.FAILED and run.error == "chunk 1: RuntimeError: disk full"
    assert CaseResultBlock.objects.count() == 0 and InstitutionLine.objects.count() == 0
    # the pool is free again
    monkeypatch.setattr(services, "_results_write", original)
    assert services.clearing_run_start(region=region, fund="employee", year=YEAR, user=None, chunks=3).status == RunStatus.DRAFT


def test_a_reduce_with_a_chunk_missing_fails_the_run_instead_of_clearing_part_of_the_pool(region):
    run, layout = _running_run_with_plan(region, chunks=3)
    results = [_chunk(run, entry) for entry in layout[:2]]

    with pytest.raises(scaleout.ScaleoutError, match=r"chunk\(s\) 2 of 3 did not come back"):
        services.clearing_run_reduce(run_id=run.pk, results=results)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "did not come back" in run.error
    assert result_count(run=run) == 0 and not run.lines.exists()


def test_the_chunk_error_callback_marks_a_running_run_failed(region):
    from settlement.tasks import clearing_run_chunks_failed

    run, _ = _running_run_with_plan(region, chunks=2)
    clearing_run_chunks_failed(None, RuntimeError("worker lost"), None, run_id=run.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error == "RuntimeError: worker lost"


# --- planning (no database) ---------------------------------------------------------------------------

@pytest.mark.django_db(False)
def test_institutions_are_partitioned_into_chunks_balanced_by_case_count():
    counts = {1: 900, 2: 500, 3: 400, 4: 300, 5: 300, 6: 200, 7: 100, 8: 100}

    parts = scaleout.partition_institutions(counts, 3)

    assert sorted(i for part in parts for i in part) == sorted(counts)
    loads = sorted(sum(counts[i] for i in part) for part in parts)
    assert loads == [900, 900, 1000]
    assert scaleout.partition_institutions(counts, 3) == parts  # deterministic
    assert len(scaleout.partition_institutions(counts, 50)) == len(counts)  # never an empty chunk


@pytest.mark.django_db(False)
def test_a_pool_is_split_only_from_the_threshold_on_unless_chunks_are_asked_for():
    assert scaleout.chunk_count(total_cases=1_999_999, chunks=None, min_cases=2_000_000, chunk_cases=500_000) == 0
    assert scaleout.chunk_count(total_cases=2_000_000, chunks=None, min_cases=2_000_000, chunk_cases=500_000) == 4
    assert scaleout.chunk_count(total_cases=10_000_000, chunks=None, min_cases=2_000_000, chunk_cases=500_000) == 20
    assert scaleout.chunk_count(total_cases=10, chunks=3, min_cases=2_000_000, chunk_cases=500_000) == 3
    assert scaleout.plan_chunks({}, chunks=3, min_cases=0, chunk_cases=1) == []


def test_a_split_run_abandoned_by_its_workers_is_failed_with_its_case_results_removed(region, settings):
    run, layout = _running_run_with_plan(region, chunks=2)
    _chunk(run, layout[0])
    ClearingRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 120))

    again = services.clearing_run_start(region=region, fund="employee", year=YEAR, user=None)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error.startswith("abandoned")
    assert result_count(run=run) == 0 and again.status == RunStatus.DRAFT
