"""A large reload reads only the lines of cases.csv that are not a stored case verbatim
(drg.services.cases_read_changed, PostgreSQL). Forced here on the worked example: what it refuses,
counts and writes is what reading the whole file gives, and where the two could differ it reads
the whole file."""
from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from django.db import connection

from drg import services as drg_services
from drg.models import Case, CaseCorrection
from exchange import bundle as exchange_bundle
from tests.conftest import require_service
from tests.integration.test_load_bundle import cases_counts, copy, load, load_refused, rewrite, rows  # noqa: F401  (copy: a fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def reads(monkeypatch) -> list:
    """Every cases_read_changed result of the test (None: the whole file was read)."""
    require_service(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")
    seen: list = []
    real = exchange_bundle.cases_read_changed

    def spy(**kwargs):
        seen.append(real(**kwargs))
        return seen[-1]

    monkeypatch.setattr(exchange_bundle, "cases_read_changed", spy)
    monkeypatch.setattr(drg_services, "UNCHANGED_FIRST_LINES", 1)
    return seen


def refused_both_ways(path: Path, monkeypatch) -> tuple[list[str], list[str]]:
    fast = load_refused(path)
    monkeypatch.setattr(drg_services, "UNCHANGED_FIRST_LINES", 10**9)
    whole = load_refused(path)
    monkeypatch.setattr(drg_services, "UNCHANGED_FIRST_LINES", 1)
    return sorted(fast), sorted(whole)


def load_canonical(path: Path) -> int:
    """Load the worked example with every value written as PostgreSQL prints it (tcm_cost with its
    two places), so that every line of its cases.csv is a stored case verbatim; returns the cases."""
    rewrite(path, "cases.csv", lambda records: [{**r, "tcm_cost": f"{D(r['tcm_cost'] or '0'):.2f}"} for r in records])
    load(path)
    return len(rows(path, "cases.csv"))


def write_lines(path: Path, change) -> None:
    """Apply `change(lines) -> lines` to cases.csv as bytes (header first)."""
    file = path / "cases.csv"
    lines = file.read_bytes().split(b"\n")
    file.write_bytes(b"\n".join(change(lines)))


def test_bad_lines_among_unchanged_ones_are_refused_exactly_as_when_the_whole_file_is_read(worked_bundle, copy, reads, monkeypatch):
    total = load_canonical(copy)
    reads.clear()

    def break_cases(records):
        by_no = {r["case_no"]: r for r in records}
        by_no["c01"]["institution_code"] = "H9"                 # unknown institution (line 2)
        by_no["c02"]["discharge_date"] = "2025-01-01"           # before admission (line 3)
        by_no["c03"]["self_pay"] = "2400.01"                    # above total_cost (line 4)
        records[4]["total_cost"] = "125O0.00"                   # malformed amount (line 6)
        return records + [{**records[6], "case_no": "c-new", "drg_code": "ZZ99"}]  # a new case, unknown group

    rewrite(copy, "cases.csv", break_cases)
    write_lines(copy, lambda lines: [*lines[:6], lines[6] + b",1", *lines[7:]])  # one field too many (line 7)
    fast, whole = refused_both_ways(copy, monkeypatch)

    assert reads[0] is not None and reads[0].unchanged == total - 5
    assert fast == whole
    lines = {e.split(" ", 1)[0].rstrip(":") for e in fast}
    assert {"cases.csv:2", "cases.csv:3", "cases.csv:4", "cases.csv:6", "cases.csv:7", f"cases.csv:{len(rows(copy, 'cases.csv')) + 1}"} <= lines


@pytest.mark.parametrize("repeat", ["identical line", "same key, other values"])
def test_a_line_repeating_an_unchanged_lines_key_is_read_with_the_whole_file(worked_bundle, copy, reads, monkeypatch, repeat):
    load_canonical(copy)
    reads.clear()
    first = rows(copy, "cases.csv")[0]
    extra = dict(first) if repeat == "identical line" else {**first, "total_cost": "8100.00"}
    rewrite(copy, "cases.csv", lambda records: records + [extra])

    fast, whole = refused_both_ways(copy, monkeypatch)

    assert reads[0] is None
    last = len(rows(copy, "cases.csv")) + 1
    assert fast == whole and [e for e in fast if e.startswith(f"cases.csv:{last} case_no:") and "first at line 2" in e]


def test_bytes_that_are_not_utf8_in_a_changed_line_are_named_as_when_the_whole_file_is_read(worked_bundle, copy, reads, monkeypatch):
    load_canonical(copy)
    reads.clear()
    write_lines(copy, lambda lines: [*lines[:3], lines[3].replace(b"normal", b"norm\xffal"), *lines[4:]])

    fast, whole = refused_both_ways(copy, monkeypatch)

    assert reads[0] is None
    assert fast == whole and fast[0].startswith("cases.csv:4: not UTF-8 text")


def test_blank_lines_and_a_changed_case_load_with_the_numbers_and_counts_of_the_whole_file(worked_bundle, copy, reads):
    total = load_canonical(copy)
    reads.clear()
    rewrite(copy, "cases.csv", lambda records: [{**r, "total_cost": "9000.00"} if r["case_no"] == "c01" else r for r in records])
    write_lines(copy, lambda lines: [lines[0], b"", *lines[1:4], b"", *lines[4:]])

    out = load(copy)

    assert reads[0] is not None and reads[0].unchanged == total - 1 and list(reads[0].typed["_line"]) == [3]
    assert cases_counts(out) == ["0", "1", str(total - 1)]
    correction = CaseCorrection.objects.get()
    assert correction.before == {"total_cost": "8000.00"} and correction.after == {"total_cost": "9000.00"}
    assert Case.objects.get(case_no="c01", institution__code="H1").total_cost == D("9000.00")
    assert Case.objects.count() == total


def test_a_first_load_reads_the_whole_file(worked_bundle, reads):  # no region yet: nothing to read against
    load(worked_bundle)

    assert reads == [] and Case.objects.count() == len(rows(worked_bundle, "cases.csv"))


@pytest.mark.parametrize("bad", ["c\x0001", "=cmd|' /C calc'!A0", "c\t01"])
def test_hostile_identifiers_in_changed_lines_are_bad_rows_as_when_the_whole_file_is_read(worked_bundle, copy, reads, monkeypatch, bad):
    load_canonical(copy)
    reads.clear()

    def break_cases(records):
        records[2]["case_no"] = bad                              # line 4
        records[5]["patient_id"] = bad                           # line 7
        return records

    rewrite(copy, "cases.csv", break_cases)
    fast, whole = refused_both_ways(copy, monkeypatch)

    assert reads[0] is not None
    assert fast == whole and any(e.startswith("cases.csv:4 case_no:") for e in fast) and any(e.startswith("cases.csv:7 patient_id:") for e in fast)


def test_a_file_of_mostly_new_cases_in_a_loaded_region_is_read_whole(worked_bundle, copy, reads):
    """A first load of a region-year in a region with cases: a sample of its lines names no stored
    case, so the stored cases are not read for nothing."""
    total = load_canonical(copy)
    reads.clear()
    rewrite(copy, "cases.csv", lambda records: [{**r, "case_no": f"n{r['case_no']}"} for r in records])

    out = load(copy)

    assert reads == [None]
    assert cases_counts(out) == [str(total), "0", "0"] and Case.objects.count() == 2 * total


def test_lines_of_years_the_sample_does_not_name_are_read_and_compared(worked_bundle, copy, reads, monkeypatch):
    """Only the stored cases of the sample's discharge years are printed; the line of a case
    discharged in another year is read and found unchanged like any other."""
    rewrite(copy, "cases.csv", lambda records: [{**r, "discharge_date": "2026-01-02"} if r["case_no"] == "c19" else r for r in records])
    total = load_canonical(copy)
    reads.clear()
    monkeypatch.setattr(drg_services, "SAMPLE_LINES", 1)  # the first line alone: 2025

    out = load(copy)

    later = {r["case_no"] for r in rows(copy, "cases.csv") if not r["discharge_date"].startswith("2025")}
    assert "c19" in later and len(later) < total
    assert reads[0] is not None and reads[0].unchanged == total - len(later) and set(reads[0].frame["case_no"]) == later
    assert cases_counts(out) == ["0", "0", str(total)]
