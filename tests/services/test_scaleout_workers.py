"""Scale-out through real Celery workers and Redis (CI starts two workers): a pool valued in chunks
by both workers equals the single-process run to the cent (docs/scaleout.md)."""
from __future__ import annotations

import datetime as dt
import time

import pytest
from django.core.management import call_command

from drg.models import Case, Region
from exchange.synthetic import generate_bundle
from settlement import services
from settlement.choices import RunStatus
from settlement.models import ClearingRun, InstitutionLine
from tests.results_helpers import result_count, result_tuples

pytestmark = [pytest.mark.services]

REGION, YEAR = "339901", 2025
CASE_FIELDS = ("case_id", "institution_id", "valuation_group", "coefficient", "ratio", "category", "base_points",
               "readmission_halved", "points_before_readmission", "points")
LINE_FIELDS = tuple(f.attname for f in InstitutionLine._meta.concrete_fields if f.attname not in ("id", "run_id"))


@pytest.fixture(scope="module")
def generated_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("scaleout-workers")
    generate_bundle(out=out, cases=20_000, seed=3, year=YEAR)
    return out


@pytest.fixture
def region(celery_workers, generated_bundle):
    call_command("load_bundle", str(generated_bundle), stdout=open("/dev/null", "w"))
    return Region.objects.get(code=REGION)


def wait_for(run_id: int, seconds: float = 180) -> ClearingRun:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = ClearingRun.objects.get(pk=run_id)
        if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {ClearingRun.objects.get(pk=run_id).status} after {seconds}s")


def test_two_workers_value_the_chunks_of_an_annual_clearing_and_match_the_single_process_run_to_the_cent(region, celery_workers):
    _, replies = celery_workers
    assert len(replies) >= 2, f"two workers are needed, got {replies}"
    single = services.clearing_run_start(region=region, fund="employee", year=YEAR, user=None)  # in this process
    assert single.status == RunStatus.DRAFT and "chunks" not in single.timings

    call_command("clear", region=REGION, fund="employee", year=YEAR, chunks=6, run_async=True, stdout=open("/dev/null", "w"))
    chunked = wait_for(ClearingRun.objects.exclude(pk=single.pk).get().pk)

    assert chunked.status == RunStatus.DRAFT, chunked.error
    workers = {chunk["worker"] for chunk in chunked.timings["chunks"]}
    assert len(chunked.timings["chunks"]) == 6 and len(workers) >= 2, chunked.timings["chunks"]
    as_lines = lambda run: list(InstitutionLine.objects.filter(run=run).order_by("institution_id").values_list(*LINE_FIELDS))
    as_cases = lambda run: result_tuples(run, CASE_FIELDS)
    assert as_lines(chunked) == as_lines(single)
    assert as_cases(chunked) == as_cases(single)
    assert chunked.totals == single.totals and chunked.totals["distributed"] == single.totals["distributed"]
    assert chunked.fingerprint == single.fingerprint and chunked.case_count == single.case_count


def test_a_chunk_failing_on_a_worker_fails_the_run_and_leaves_no_case_results(region, celery_workers):
    # one institution's case refers to a group missing from the catalog: its chunk cannot be valued
    case = Case.objects.filter(region=region, fund="resident", discharge_date__year=YEAR).order_by("id").first()
    Case.objects.filter(pk=case.pk).update(drg_code="ZZ99")

    run = services.clearing_run_start(region=region, fund="resident", year=YEAR, user=None, chunks=4)  # waits for the workers

    assert run.status == RunStatus.FAILED
    assert run.error.startswith("chunk ") and "ValuationInputError" in run.error and "ZZ99" in run.error
    # chunks still at work see the run failed when they come to store, and store nothing
    assert result_count(run=run) == 0 and not InstitutionLine.objects.filter(run=run).exists()
    Case.objects.filter(pk=case.pk).update(drg_code=case.drg_code)
    again = services.clearing_run_start(region=region, fund="resident", year=YEAR, user=None, chunks=4)
    assert again.status == RunStatus.DRAFT, again.error
    assert again.case_count == Case.objects.filter(region=region, fund="resident",
                                                   discharge_date__range=(dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31))).count()
