"""load_bundle through the command, against the database: exact records, idempotent re-loads,
all-or-nothing refusal naming every bad row, recorded corrections, finalized periods. Runs on
SQLite locally and on PostgreSQL (the COPY path) under .ci/run."""
from __future__ import annotations

import csv
import json
import shutil
from decimal import Decimal as D
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from budget.models import Budget
from drg.models import Case, CaseCorrection, Coefficient, DrgGroup, Institution, PaymentScheme, Region, SpecialReview, TcmEquivalent
from incentives.models import ChronicEnrollment, HospiceService, Screening, TcmWorkload
from settlement.models import Evaluation, ItemizedClaim, PointAdjustment

pytestmark = pytest.mark.django_db

MODELS = (Region, Institution, DrgGroup, Coefficient, TcmEquivalent, PaymentScheme, Budget, Case, SpecialReview,
          ItemizedClaim, PointAdjustment, Evaluation, ChronicEnrollment, TcmWorkload, HospiceService, Screening,
          CaseCorrection)


def load(path: Path) -> str:
    out = StringIO()
    call_command("load_bundle", str(path), stdout=out, stderr=StringIO())
    return out.getvalue()


def load_refused(path: Path) -> list[str]:
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was loaded"):
        call_command("load_bundle", str(path), stdout=StringIO(), stderr=err)
    return err.getvalue().splitlines()


def cases_counts(out: str) -> list[str]:
    """created, updated, unchanged of cases.csv as load_bundle prints them."""
    return next(line for line in out.splitlines() if line.startswith("cases.csv")).split()[1:]


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def rows(bundle: Path, name: str) -> list[dict]:
    with open(bundle / name, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def rewrite(path: Path, name: str, change) -> None:
    """Apply `change(rows) -> rows` to a CSV of the bundle copy, keeping its header."""
    with open(path / name, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header, records = reader.fieldnames, list(reader)
    records = change(records)
    with open(path / name, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)


@pytest.fixture
def copy(worked_bundle, tmp_path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(worked_bundle, target)
    return target


def test_the_worked_example_is_stored_exactly(worked_bundle):
    out = load(worked_bundle)

    expected_cases = rows(worked_bundle, "cases.csv")
    assert "cases.csv" in out and "loaded" in out
    assert Region.objects.get().code == "331083"
    assert Institution.objects.count() == len(rows(worked_bundle, "institutions.csv"))
    assert DrgGroup.objects.filter(year=2025).count() == len(rows(worked_bundle, "drg_groups.csv"))
    assert Case.objects.count() == len(expected_cases)
    for row in expected_cases:
        case = Case.objects.select_related("institution").get(institution__code=row["institution_code"], case_no=row["case_no"])
        assert (case.fund, case.patient_id, case.drg_code, case.discharge_status) == (
            row["fund"], row["patient_id"], row["drg_code"], row["discharge_status"])
        assert (case.admission_date.isoformat(), case.discharge_date.isoformat()) == (row["admission_date"], row["discharge_date"])
        assert (case.total_cost, case.self_pay, case.tcm_cost) == (D(row["total_cost"]), D(row["self_pay"]), D(row["tcm_cost"]))
        assert (case.tcm_treatment, case.surgery_grade, case.malignant_tumor_surgery) == (
            row["tcm_treatment"] == "1", int(row["surgery_grade"]), row["malignant_tumor_surgery"] == "1")
    h1 = Institution.objects.get(code="H1")
    assert (h1.level, h1.category, h1.is_public, h1.group_code, h1.coefficient) == (3, "general", True, "YH-G1", D("1.10"))
    employee = Budget.objects.get(fund="employee", year=2025)
    assert (employee.total, employee.reserve, employee.inpatient) == (D("325049.00"), D("16252.45"), D("308796.55"))
    assert employee.status == "approved"
    assert SpecialReview.objects.get().status == "approved"
    assert ItemizedClaim.objects.count() == len(rows(worked_bundle, "itemized_claims.csv"))
    assert ChronicEnrollment.objects.count() == len(rows(worked_bundle, "chronic_enrollments.csv"))
    assert CaseCorrection.objects.count() == 0


def test_loading_twice_changes_nothing(worked_bundle):
    load(worked_bundle)
    before = counts()
    stamps = dict(Case.objects.values_list("pk", "updated_at"))

    out = load(worked_bundle)

    assert counts() == before
    assert dict(Case.objects.values_list("pk", "updated_at")) == stamps
    assert cases_counts(out) == ["0", "0", str(len(rows(worked_bundle, "cases.csv")))]


def test_a_changed_case_of_an_open_period_is_updated_and_recorded_as_a_correction(worked_bundle, copy):
    load(worked_bundle)
    rewrite(copy, "cases.csv", lambda rs: [{**r, "total_cost": "9000.00"} if r["case_no"] == "c01" else r for r in rs])

    out = load(copy)

    case = Case.objects.get(case_no="c01", institution__code="H1")
    assert case.total_cost == D("9000.00")
    correction = CaseCorrection.objects.get()
    assert correction.case == case and correction.source == "bundle"
    assert correction.before == {"total_cost": "8000.00"} and correction.after == {"total_cost": "9000.00"}
    assert "1 case correction(s) recorded" in out


def test_a_reload_read_by_whole_institutions_classifies_exactly_as_by_keys(worked_bundle, copy, monkeypatch):
    """PostgreSQL reads the stored cases of a large reload by one COPY of its institutions' cases
    (drg.selectors.PG_WHOLE_INSTITUTIONS_KEYS); forced here for every reload: the same unchanged and
    changed rows, the same correction."""
    from drg import selectors as drg_selectors

    monkeypatch.setattr(drg_selectors, "PG_WHOLE_INSTITUTIONS_KEYS", 1)
    load(worked_bundle)
    before = counts()
    out = load(worked_bundle)
    assert counts() == before
    assert cases_counts(out) == ["0", "0", str(len(rows(worked_bundle, "cases.csv")))]

    rewrite(copy, "cases.csv", lambda rs: [{**r, "total_cost": "9000.00"} if r["case_no"] == "c01" else r for r in rs])
    out = load(copy)
    correction = CaseCorrection.objects.get()
    assert correction.case == Case.objects.get(case_no="c01", institution__code="H1")
    assert correction.before == {"total_cost": "8000.00"} and correction.after == {"total_cost": "9000.00"}
    assert cases_counts(out) == ["0", "1", str(len(rows(worked_bundle, "cases.csv")) - 1)]


def test_a_bundle_with_broken_rows_loads_nothing_and_names_every_broken_row(copy):
    def break_cases(records):
        by_no = {r["case_no"]: r for r in records}
        by_no["c01"]["institution_code"] = "H9"                                   # unknown institution (line 2)
        by_no["c02"]["discharge_date"] = "2025-01-01"                             # before admission 2025-01-05 (line 3)
        by_no["c03"]["self_pay"] = "2400.01"                                      # above total_cost 2400.00 (line 4)
        records[4]["total_cost"] = "12,5O0.00"                                    # malformed amount (line 6)
        return records + [dict(records[6])]                                       # duplicate of line 8's case_no (last line)

    rewrite(copy, "cases.csv", break_cases)
    params = json.loads((copy / "params.json").read_text(encoding="utf-8"))
    params["budgets"]["employee"]["growth_rate"] = "0.12"                         # above its cap 0.10
    (copy / "params.json").write_text(json.dumps(params), encoding="utf-8")
    duplicate_line = len(rows(copy, "cases.csv")) + 1

    errors = load_refused(copy)

    assert counts() == {name: 0 for name in counts()}
    text = "\n".join(errors)
    assert any(e.startswith("cases.csv:2 institution_code:") and "H9" in e for e in errors), text
    assert any(e.startswith("cases.csv:3 discharge_date:") for e in errors), text
    assert any(e.startswith("cases.csv:4 self_pay:") for e in errors), text
    assert any(e.startswith("cases.csv:6 total_cost:") and "12,5O0.00" in e for e in errors), text
    assert any(e.startswith(f"cases.csv:{duplicate_line} case_no:") for e in errors), text
    assert any(e.startswith("params.json") and "growth_rate" in e for e in errors), text


def test_a_bad_row_in_a_later_file_leaves_the_earlier_files_unloaded_too(copy):
    rewrite(copy, "screenings.csv", lambda rs: [{**rs[0], "screening_date": "2025-02-30"}, *rs[1:]])

    errors = load_refused(copy)

    assert [e for e in errors if e.startswith("screenings.csv:2 screening_date:")]
    assert counts() == {name: 0 for name in counts()}


def test_a_reload_compared_by_the_database_first_classifies_exactly(worked_bundle, copy, monkeypatch):
    """PostgreSQL lets the database name the rows of a large reload that are not textually identical
    to their stored case (drg.services.UNCHANGED_FIRST_LINES); forced here for every reload: the same
    unchanged and changed rows, the same correction, and a value written otherwise but equal
    (8000.0 for 8000.00, an empty tcm_cost for 0) is unchanged."""
    from drg import services as drg_services

    monkeypatch.setattr(drg_services, "UNCHANGED_FIRST_LINES", 1)
    load(worked_bundle)
    before = counts()
    out = load(worked_bundle)
    assert counts() == before
    assert cases_counts(out) == ["0", "0", str(len(rows(worked_bundle, "cases.csv")))]
    # every value as the database prints it: the rows are identical text, found so by the database
    rewrite(copy, "cases.csv", lambda rs: [{**r, "tcm_cost": f"{D(r['tcm_cost'] or '0'):.2f}"} for r in rs])
    out = load(copy)
    assert counts() == before
    assert cases_counts(out) == ["0", "0", str(len(rows(worked_bundle, "cases.csv")))]

    def change(records):
        changed = []
        for r in records:
            if r["case_no"] == "c01":
                r = {**r, "total_cost": "9000.00"}
            elif r["case_no"] == "c02":
                total = r["total_cost"]
                r = {**r, "total_cost": total[:-1] if total.endswith("0") else total}
                if r.get("tcm_cost") in ("0", "0.00"):
                    r["tcm_cost"] = ""
            changed.append(r)
        return changed

    rewrite(copy, "cases.csv", change)
    out = load(copy)
    correction = CaseCorrection.objects.get()
    assert correction.case == Case.objects.get(case_no="c01", institution__code="H1")
    assert correction.before == {"total_cost": "8000.00"} and correction.after == {"total_cost": "9000.00"}
    assert cases_counts(out) == ["0", "1", str(len(rows(worked_bundle, "cases.csv")) - 1)]


@pytest.mark.parametrize("first_lines", [None, 1], ids=["whole file", "stored lines first"])
def test_a_changed_case_of_a_finalized_month_is_refused_and_an_identical_one_is_not(worked_bundle, copy, monkeypatch, first_lines):
    from drg import services as drg_services

    if first_lines is not None:  # the database's stored lines read first (PostgreSQL)
        monkeypatch.setattr(drg_services, "UNCHANGED_FIRST_LINES", first_lines)
    load(worked_bundle)
    call_command("clear", "--region", "331083", "--fund", "employee", "--year", "2025", "--month", "1", "--finalize",
                 stdout=StringIO())
    rewrite(copy, "cases.csv", lambda rs: [{**r, "total_cost": "8100.00"} if r["case_no"] == "c01" else r for r in rs])

    errors = load_refused(copy)

    assert len(errors) == 1 and errors[0].startswith("cases.csv:2 ") and "finalized" in errors[0]
    assert Case.objects.get(case_no="c01").total_cost == D("8000.00")
    load(worked_bundle)  # the unchanged bundle still loads (nothing to change)


def test_a_missing_bundle_directory_is_a_clear_error(tmp_path):
    errors = load_refused(tmp_path / "nowhere")

    assert errors == [f"{tmp_path / 'nowhere'}:0: not a bundle directory"]


# --- hostile identifiers and a broken database connection -------------------------------------------


@pytest.mark.parametrize("bad", ["=cmd|' /C calc'!A0", "+1", "-x", "@SUM(A1)", "   ", "c\x0001", "c\t01", "c 01"])
def test_identifiers_that_his_systems_do_not_issue_are_bad_rows_named_by_file_line_and_column(copy, bad):
    def break_cases(records):
        records[2]["case_no"] = bad                                               # line 4
        records[5]["patient_id"] = bad                                            # line 7
        return records

    rewrite(copy, "cases.csv", break_cases)
    rewrite(copy, "itemized_claims.csv", lambda records: [{**records[0], "claim_no": bad}, *records[1:]])
    rewrite(copy, "screenings.csv", lambda records: [{**records[0], "patient_id": bad}, *records[1:]])

    errors = load_refused(copy)

    assert counts() == {name: 0 for name in counts()}
    text = "\n".join(errors)
    for prefix in ("cases.csv:4 case_no:", "cases.csv:7 patient_id:", "itemized_claims.csv:2 claim_no:", "screenings.csv:2 patient_id:"):
        assert any(e.startswith(prefix) for e in errors), (prefix, text)
    assert "\x00" not in text


def test_a_nul_after_a_date_a_month_or_an_amount_is_a_bad_row_named_by_file_line_and_column(copy):
    rewrite(copy, "cases.csv", lambda records: [records[0], {**records[1], "discharge_date": records[1]["discharge_date"] + "\x00"},
                                                {**records[2], "total_cost": records[2]["total_cost"] + "\x00"}, *records[3:]])
    rewrite(copy, "itemized_claims.csv", lambda records: [{**records[0], "month": records[0]["month"] + "\x00"}, *records[1:]])

    errors = load_refused(copy)

    assert counts() == {name: 0 for name in counts()}
    for prefix in ("cases.csv:3 discharge_date:", "cases.csv:4 total_cost:", "itemized_claims.csv:2 month:"):
        assert any(e.startswith(prefix) for e in errors), (prefix, errors)
    assert "\x00" not in "\n".join(errors)


def test_a_carriage_return_alone_in_cases_csv_is_refused_naming_its_line(copy):
    lines = (copy / "cases.csv").read_text(encoding="utf-8").split("\n")
    lines[3] = lines[3].replace(",", ",\r", 1)                                  # line 4
    (copy / "cases.csv").write_text("\n".join(lines), encoding="utf-8", newline="")

    errors = load_refused(copy)

    assert counts() == {name: 0 for name in counts()}
    assert "cases.csv:4: a carriage return (CR) alone inside a record: lines end with LF or CRLF" in errors


def test_an_institution_code_like_a_formula_is_refused(copy):
    rewrite(copy, "institutions.csv", lambda records: [{**records[0], "code": "=H1"}, *records[1:]])
    errors = load_refused(copy)
    assert any(e.startswith("institutions.csv:2 code:") and "'='" in e for e in errors), errors


def test_a_broken_database_connection_mid_load_is_one_line_and_loads_nothing(worked_bundle, monkeypatch):
    from django.db import OperationalError

    import exchange.bundle

    def connection_lost(**kwargs):  # the budgets are written after regions, catalogs and institutions
        raise OperationalError("terminating connection due to administrator command\nserver closed the connection unexpectedly")

    monkeypatch.setattr(exchange.bundle, "_budgets_upsert", connection_lost)

    with pytest.raises(CommandError) as raised:
        call_command("load_bundle", str(worked_bundle), stdout=StringIO(), stderr=StringIO())

    message = str(raised.value)
    assert "\n" not in message
    assert "数据库连接中断（terminating connection due to administrator command）" in message and "nothing was loaded" in message
    assert counts() == {name: 0 for name in counts()}


def test_a_load_aborted_over_a_conflict_with_another_transaction_says_so_and_to_run_it_again(worked_bundle, monkeypatch):
    from django.db import OperationalError
    from django.utils import translation

    import exchange.bundle

    class DeadlockDetected(Exception):  # what psycopg raises, as Django chains it
        sqlstate = "40P01"

    def deadlock(**kwargs):
        raise OperationalError("deadlock detected\nDETAIL: Process 1 waits for ShareLock") from DeadlockDetected()

    monkeypatch.setattr(exchange.bundle, "_budgets_upsert", deadlock)
    messages = {}
    for language in ("zh-hans", "en"):
        with translation.override(language), pytest.raises(CommandError) as raised:
            call_command("load_bundle", str(worked_bundle), stdout=StringIO(), stderr=StringIO())
        messages[language] = str(raised.value)

    assert "数据库因与其他事务冲突中止了载入（deadlock detected）" in messages["zh-hans"] and "重新运行 load_bundle" in messages["zh-hans"]
    assert "conflict with another transaction (deadlock detected); nothing was loaded" in messages["en"]
    assert "连接中断" not in messages["zh-hans"]
    assert counts() == {name: 0 for name in counts()}


RECORD_MODELS = (SpecialReview, ItemizedClaim, PointAdjustment, Evaluation, ChronicEnrollment, TcmWorkload, HospiceService, Screening)


def file_counts(out: str, name: str) -> list[str]:
    """created, updated, unchanged of one file as load_bundle prints them."""
    return next(line for line in out.splitlines() if line.startswith(name)).split()[1:]


def test_approved_records_are_stored_with_one_history_row_each_and_a_changed_one_is_updated(worked_bundle, copy):
    """The approved records (COPYed from their columns on PostgreSQL, created as objects on SQLite)
    carry the values of the file, the system user's approval and, where the model keeps history,
    exactly one '+' history row; a
    reload with one changed and one new record updates the one (a '~' history row) and creates the
    other, leaving the rest alone."""
    from common.models import ReviewStatus
    from common.users import system_user

    load(worked_bundle)
    system = system_user()
    with_history = [model for model in RECORD_MODELS if hasattr(model, "history")]
    assert {SpecialReview, ItemizedClaim, PointAdjustment, Evaluation} <= set(with_history)
    for model in RECORD_MODELS:
        assert model.objects.exists(), model.__name__
    for model in with_history:
        for record in model.objects.all():
            history = list(record.history.all())
            assert [h.history_type for h in history] == ["+"], (model.__name__, record.pk)
            assert history[0].history_change_reason.startswith("数据包 ")
            assert history[0].history_user == system
    claim = ItemizedClaim.objects.get(claim_no="T002")
    assert (claim.institution.code, claim.fund, claim.month.isoformat(), claim.patient_id, claim.approved_amount) == (
        "H2", "employee", "2025-07-01", "P202", D("2300.00"))
    assert (claim.status, claim.decided_by, claim.rejection_reason) == (ReviewStatus.APPROVED, system, "")
    assert claim.history.get().approved_amount == D("2300.00")
    screening = Screening.objects.get(patient_id="P502")
    assert (screening.fee, screening.high_risk, screening.screening_date.isoformat()) == (D("600.00"), False, "2025-04-02")

    listed = rows(worked_bundle, "itemized_claims.csv")
    rewrite(copy, "itemized_claims.csv", lambda rs: [{**r, "approved_amount": "1600.00"} if r["claim_no"] == "T001" else r for r in rs] + [
        {"claim_no": "T009", "institution_code": "H1", "fund": "employee", "month": "2025-03", "patient_id": "P209", "approved_amount": "12.34"}])
    out = load(copy)
    assert file_counts(out, "itemized_claims.csv") == ["1", "1", str(len(listed) - 1)]
    changed = ItemizedClaim.objects.get(claim_no="T001")
    assert changed.approved_amount == D("1600.00")
    assert [(h.history_type, h.approved_amount) for h in changed.history.order_by("-history_id")] == [("~", D("1600.00")), ("+", D("1500.00"))]
    new = ItemizedClaim.objects.get(claim_no="T009")
    assert (new.month.isoformat(), new.approved_amount, new.status) == ("2025-03-01", D("12.34"), ReviewStatus.APPROVED)
    assert [h.history_type for h in new.history.all()] == ["+"]
    assert ItemizedClaim.objects.get(claim_no="T002").history.count() == 1
