"""Special-outpatient claims settled through the services: at the counter, re-settled when an
earlier claim or a stay arrives late (corrections recorded), in bulk (equal to the counter), and
paid into the pool as itemized payments that clearing charges to the inpatient budget."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from benefits.models import Patient, SettlementCorrection, SpecialDisease, SpecialOutpatientClaim
from benefits.services import (
    ClaimConflict,
    ClaimRefused,
    patient_category_set,
    special_outpatient_claim_submit,
    special_outpatient_settle,
)
from common.users import system_user
from exchange.bundle import bundle_load
from drg.models import Case, Institution, Region
from settlement.choices import ItemizedSource
from settlement.models import ItemizedClaim
from exchange.exports import clearing_export
from settlement.services import clearing_run_finalize, clearing_run_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def region():
    region = Region.objects.create(code="R1", name="测试区")
    SpecialDisease.objects.create(region=region, year=2025, code="D1", name="慢阻肺", disease_class="I")
    SpecialDisease.objects.create(region=region, year=2025, code="D2", name="癫痫", disease_class="II")
    return region


@pytest.fixture
def h2(region):
    return Institution.objects.create(region=region, code="H2", name="二级医院", level=2, category="general")


def submit(h, no, day, eligible, total=None, *, patient="P1", fund="resident", disease="D2"):
    return special_outpatient_claim_submit(
        institution=h, claim_no=no, fund=fund, patient_id=patient, disease_code=disease, service_date=day,
        total_cost=Decimal(total or eligible), eligible_cost=Decimal(eligible),
    )


def test_a_late_earlier_claim_resettles_the_later_one_and_records_the_correction(region, h2):
    first = submit(h2, "B", dt.date(2025, 3, 1), "4000")
    assert (first.claim.basic, first.claim.patient_pay) == (Decimal("3200.00"), Decimal("800.00"))
    late = submit(h2, "A", dt.date(2025, 2, 1), "4000")
    assert late.claim.basic == Decimal("3200.00")
    (correction,) = late.corrections
    b = SpecialOutpatientClaim.objects.get(claim_no="B")
    assert (b.basic, b.patient_pay) == (Decimal("1800.00"), Decimal("2200.00"))  # the disease cap 5000 is now shared
    assert correction.claim == b
    assert (correction.before["basic"], correction.after["basic"]) == ("3200.00", "1800.00")
    assert correction.after["explanation"]["disease_cap_left_before"] == "1800.00"
    # the pool's itemized payments follow the re-settlement
    paid = dict(ItemizedClaim.objects.filter(source=ItemizedSource.SPECIAL_OUTPATIENT).values_list("claim_no", "approved_amount"))
    assert paid == {"A": Decimal("3200.00"), "B": Decimal("1800.00")}


def test_an_identical_resubmission_is_the_stored_claim_and_a_different_one_conflicts(region, h2):
    first = submit(h2, "A", dt.date(2025, 2, 1), "100")
    again = submit(h2, "A", dt.date(2025, 2, 1), "100")
    assert (again.created, again.claim.pk) == (False, first.claim.pk)
    with pytest.raises(ClaimConflict):
        submit(h2, "A", dt.date(2025, 2, 1), "101")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"disease": "ZZ"}, "disease_code"), ({"fund": "employee"}, "fund"), ({"total": "10"}, "eligible_cost")],
)
def test_refused_claims_are_not_stored_and_count_in_no_total(region, h2, kwargs, field):
    Patient.objects.create(region=region, patient_id="P1", fund="resident", category="ordinary")
    with pytest.raises(ClaimRefused) as refused:
        submit(h2, "X", dt.date(2025, 1, 1), "4000", **kwargs)
    assert refused.value.field == field
    assert not SpecialOutpatientClaim.objects.exists()
    assert submit(h2, "Y", dt.date(2025, 1, 2), "4000").claim.basic == Decimal("3200.00")


def test_a_stay_arriving_late_resettles_the_claims_after_its_discharge(region, h2, django_capture_on_commit_callbacks):
    from drg.models import DrgGroup, PaymentScheme
    from drg.services import cases_submit
    import pandas as pd

    PaymentScheme.objects.create(region=region, year=2025, all_case_avg_cost=Decimal("10000"))
    DrgGroup.objects.create(region=region, year=2025, code="G1", name="G1", kind="stable", base_points=Decimal("100"), avg_cost=Decimal("10000"))
    submit(h2, "A", dt.date(2025, 3, 1), "5000", disease="D1")
    frame = pd.DataFrame([{
        "case_no": "c1", "institution_code": "H2", "fund": "resident", "patient_id": "P1", "admission_date": "2025-02-01",
        "discharge_date": "2025-03-01", "drg_code": "G1", "total_cost": "210000.00", "self_pay": "11000.00",
        "discharge_status": "normal", "tcm_treatment": "0", "tcm_cost": "0", "surgery_grade": "0", "malignant_tumor_surgery": "0", "_line": 0,
    }])
    with django_capture_on_commit_callbacks(execute=True):
        cases_submit(institution=h2, frame=frame)
    claim = SpecialOutpatientClaim.objects.get(claim_no="A")
    assert claim.basic == Decimal("1000.00")  # 200000 − 199000 left of the shared cap
    assert SettlementCorrection.objects.get(claim=claim).before["basic"] == "4000.00"


def test_a_category_change_resettles_and_is_kept_in_history(region, h2):
    patient = Patient.objects.create(region=region, patient_id="P1", fund="resident", category="ordinary")
    submit(h2, "A", dt.date(2025, 3, 1), "30000", "32000", disease="D1")
    patient_category_set(patient=patient, category="destitute")
    claim = SpecialOutpatientClaim.objects.get(claim_no="A")
    assert (claim.basic, claim.assistance, claim.patient_pay) == (Decimal("24000.00"), Decimal("6000.00"), Decimal("2000.00"))
    assert [h.category for h in patient.history.order_by("history_date")] == ["ordinary", "destitute"]


def test_bulk_settlement_equals_the_counter_claim_by_claim(region, h2):
    h3 = Institution.objects.create(region=region, code="H3", name="三级医院", level=3, category="general")
    Patient.objects.create(region=region, patient_id="P2", fund="resident", category="poor")
    plan = [("P1", h2, "D1", "30000"), ("P2", h3, "D2", "900"), ("P2", h2, "D1", "12000"), ("P1", h3, "D2", "7000"), ("P2", h2, "D2", "6000")]
    for i, (patient, inst, disease, eligible) in enumerate(plan):
        submit(inst, f"N{i}", dt.date(2025, 1 + i, 10), eligible, str(Decimal(eligible) + 100), patient=patient, disease=disease)
    counter = {c.claim_no: (c.basic, c.critical, c.assistance, c.patient_pay, c.explanation) for c in SpecialOutpatientClaim.objects.all()}
    SpecialOutpatientClaim.objects.update(basic=None, critical=None, assistance=None, patient_pay=None, explanation={}, settled_at=None)
    report = special_outpatient_settle(region=region, year=2025)
    bulk = {c.claim_no: (c.basic, c.critical, c.assistance, c.patient_pay, c.explanation) for c in SpecialOutpatientClaim.objects.all()}
    assert bulk == counter and report.newly_settled == 5 and report.corrected == 0
    assert special_outpatient_settle(region=region, year=2025).newly_settled == 0  # nothing left to settle


def test_the_pools_special_outpatient_total_is_the_bundles_itemized_claims_plus_the_settled_basic_parts(worked_bundle, tmp_path):
    bundle_load(path=worked_bundle)
    region = Region.objects.get(code="331083")
    SpecialDisease.objects.create(region=region, year=2025, code="D1", name="慢阻肺", disease_class="I")
    h1 = Institution.objects.get(region=region, code="H1")
    # a claim named like a bundle itemized claim (T001) is a different payment
    basics = [
        special_outpatient_claim_submit(institution=h1, claim_no=no, fund="employee", patient_id="P9", disease_code="D1",
                                        service_date=day, total_cost=Decimal(t), eligible_cost=Decimal(e)).claim.basic
        for no, day, t, e in (("T001", dt.date(2025, 2, 3), "1000.00", "1000.00"), ("S2", dt.date(2025, 11, 30), "2500.00", "2000.00"))
    ]
    assert basics == [Decimal("880.00"), Decimal("1760.00")]  # H1 is level 3: 88 %
    batch = system_user()
    run = clearing_run_finalize(run=clearing_run_start(region=region, fund="employee", year=2025, user=batch), user=batch, system=True)
    clearing_export(run=run, out_dir=tmp_path)
    pool = json.loads((tmp_path / "pool.json").read_text())
    assert pool["special_outpatient"] == "6440.00"  # 1500 + 2300 (bundle, employee) + 880 + 1760


def test_the_command_settles_what_is_not_settled_and_writes_special_outpatient_csv(region, h2, tmp_path):
    from django.core.management import call_command

    h3 = Institution.objects.create(region=region, code="H3", name="三级医院", level=3, category="general")
    Patient.objects.create(region=region, patient_id="P2", fund="employee", category="destitute")
    for no, inst, fund, patient, disease, day, total, eligible in (
        ("10", h2, "resident", "P1", "D2", dt.date(2025, 1, 5), "4500.00", "4000.00"),
        ("9", h2, "resident", "P1", "D2", dt.date(2025, 1, 5), "4000.00", "4000.00"),
        ("X1", h3, "employee", "P2", "D1", dt.date(2025, 6, 1), "12000.00", "10000.00"),
        ("OLD", h3, "employee", "P2", "D1", dt.date(2024, 12, 31), "100.00", "100.00"),
    ):
        SpecialOutpatientClaim.objects.create(region=region, institution=inst, claim_no=no, fund=fund, patient_id=patient, disease_code=disease,
                                              service_date=day, total_cost=Decimal(total), eligible_cost=Decimal(eligible), source="bundle")
    call_command("settle_special_outpatient", region="R1", year=2025, out=tmp_path)
    assert (tmp_path / "special_outpatient.csv").read_text() == (
        "claim_no,institution_code,fund,patient_id,basic,critical,assistance,patient\n"
        "10,H2,resident,P1,3200.00,0.00,0.00,1300.00\n"  # "10" < "9" as strings: settled first
        "9,H2,resident,P1,1800.00,0.00,0.00,2200.00\n"
        "X1,H3,employee,P2,8800.00,0.00,1200.00,2000.00\n"  # destitute: the whole remainder of eligible
    )
    assert SpecialOutpatientClaim.objects.get(claim_no="OLD").settled_at is None  # another year


def test_payer_statements_per_month_in_csv_and_excel_with_formula_like_text_escaped(region, tmp_path):
    from openpyxl import load_workbook
    import io
    from benefits.exports import statement_csv_text, statement_xlsx_bytes

    evil = Institution.objects.create(region=region, code="=H9", name="=HYPERLINK(\"x\")", level=1, category="primary")
    Patient.objects.create(region=region, patient_id="P3", fund="resident", category="subsistence")
    for no, day in (("a", dt.date(2025, 2, 1)), ("b", dt.date(2025, 2, 20)), ("c", dt.date(2025, 3, 1))):
        submit(evil, no, day, "10000", patient="P3", disease="D1")
    # level 1: basic 9000 each; burden 1000, 2000, 3000 (< 7500): assistance r2(1000 × 0.75) = 750 each
    text = statement_csv_text(region=region, year=2025, payer="assistance")
    assert text.splitlines() == [
        "month,institution_code,institution_name,fund,claims,amount",
        "2025-02,'=H9,\"'=HYPERLINK(\"\"x\"\")\",resident,2,1500.00",
        "2025-03,'=H9,\"'=HYPERLINK(\"\"x\"\")\",resident,1,750.00",
        "合计,,,,3,2250.00",
    ]
    assert statement_csv_text(region=region, year=2025, payer="assistance", month=3).splitlines()[1].endswith(",1,750.00")
    sheet = load_workbook(io.BytesIO(statement_xlsx_bytes(region=region, year=2025, payer="basic"))).active
    assert [c.value for c in sheet[3]] == ["2025-02", "'=H9", "'=HYPERLINK(\"x\")", "resident", 2, 18000]
    assert sheet.cell(row=5, column=6).value == 27000


@pytest.mark.parametrize("bulk_update_rows", [None, 1])  # 1: the corrected parts go through one COPY (PostgreSQL)
def test_many_stays_at_once_resettle_the_region_year_in_bulk(region, h2, bulk_update_rows, monkeypatch):
    from drg.models import DrgGroup
    from drg.signals import cases_stored

    if bulk_update_rows:
        monkeypatch.setattr("benefits.services.BULK_UPDATE_ROWS", bulk_update_rows)

    DrgGroup.objects.create(region=region, year=2025, code="G1", name="G1", kind="stable", base_points=Decimal("100"), avg_cost=Decimal("10000"))
    submit(h2, "A", dt.date(2025, 3, 1), "5000", disease="D1")
    Case.objects.create(region=region, institution=h2, case_no="c1", fund="resident", patient_id="P1", admission_date=dt.date(2025, 2, 1),
                        discharge_date=dt.date(2025, 2, 20), drg_code="G1", total_cost=Decimal("199500.00"), self_pay=Decimal("0.00"))
    keys = {("P1", "resident", 2025), *{(f"X{i}", "resident", 2025) for i in range(300)}}
    cases_stored.send(sender=Case, region_id=region.pk, keys=keys, source="bundle")  # Celery runs eagerly in tests
    claim = SpecialOutpatientClaim.objects.get(claim_no="A")
    assert (claim.basic, claim.critical, claim.assistance, claim.patient_pay) == (Decimal("500.00"), Decimal("0.00"), Decimal("0.00"), Decimal("4500.00"))
    # the stay left 500.00 of the year's cap: that is the basic part, the rest the patient's
    assert (claim.explanation["cap_left_before"], claim.explanation["burden_to_date"]) == ("500.00", "4500.00")
    correction = SettlementCorrection.objects.get(claim=claim)
    assert correction.source == "bundle" and correction.after["basic"] == "500.00"


def test_claims_posted_at_the_counter_in_any_order_end_as_the_bulk_settlement_of_the_year(region, h2):
    """Late, same-day and appended claims at the counter (which compares only the claims from the
    arriving one's date on): every split and explanation equals settling the year from scratch."""
    import random

    h3 = Institution.objects.create(region=region, code="H3", name="三级医院", level=3, category="general")
    plan = [(f"C{i:02d}", (h2, h3)[i % 2], ("D1", "D2")[i % 3 == 0], dt.date(2025, 1 + i % 6, 1 + (i * 7) % 3), str(800 + 350 * (i % 5)))
            for i in range(24)]  # several claims share a date: their order is the claim number's
    random.Random(7).shuffle(plan)
    corrected = 0
    for no, inst, disease, day, eligible in plan:
        corrected += len(submit(inst, no, day, eligible, str(Decimal(eligible) + 50), disease=disease).corrections)
    assert corrected > 0  # some arrived before claims already settled
    counter = {c.claim_no: (c.basic, c.critical, c.assistance, c.patient_pay, c.explanation) for c in SpecialOutpatientClaim.objects.all()}
    SpecialOutpatientClaim.objects.update(basic=None, critical=None, assistance=None, patient_pay=None, explanation={}, settled_at=None)
    special_outpatient_settle(region=region, year=2025)
    bulk = {c.claim_no: (c.basic, c.critical, c.assistance, c.patient_pay, c.explanation) for c in SpecialOutpatientClaim.objects.all()}
    assert bulk == counter
