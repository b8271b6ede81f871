"""The bundle's benefits files (BENEFITS.md, EXCHANGE.md): validated like the others (every bad row
named, nothing loaded), stored idempotently, settled on load, re-settled when a reload changes a
category or a claim."""
from __future__ import annotations

import json
import shutil
from decimal import Decimal

import pytest

from benefits.models import BenefitParameters, Patient, SettlementCorrection, SpecialDisease, SpecialOutpatientClaim
from exchange.bundle import BundleInvalid, bundle_load
from settlement.models import ItemizedClaim

pytestmark = pytest.mark.django_db

PATIENTS = "patient_id,fund,category\nP201,employee,poor\nP203,resident,destitute\n"
DISEASES = "code,name,class,annual_cap\nD1,尿毒症透析,I,150000.00\nD2,癫痫,II,\n"
CLAIMS = (
    "claim_no,institution_code,fund,patient_id,disease_code,service_date,total_cost,eligible_cost\n"
    "S1,H1,employee,P201,D2,2025-03-01,4000.00,3000.00\n"
    "S2,H2,employee,P201,D2,2025-04-01,4000.00,4000.00\n"
    "S3,H1,resident,P203,D1,2025-05-01,10000.00,9000.00\n"
)


@pytest.fixture
def bundle(worked_bundle, tmp_path):
    path = tmp_path / "bundle"
    shutil.copytree(worked_bundle, path)
    (path / "patients.csv").write_text(PATIENTS, encoding="utf-8")
    (path / "special_diseases.csv").write_text(DISEASES, encoding="utf-8")
    (path / "special_outpatient_claims.csv").write_text(CLAIMS, encoding="utf-8")
    params = json.loads((path / "params.json").read_text(encoding="utf-8"))
    params["benefits"] = {"employee": {"deductible": "500"}, "easy_critical_ratio": "0.95"}
    (path / "params.json").write_text(json.dumps(params, ensure_ascii=False), encoding="utf-8")
    return path


def parts(no):
    c = SpecialOutpatientClaim.objects.get(claim_no=no)
    return tuple(str(v) for v in (c.basic, c.critical, c.assistance, c.patient_pay))


def test_a_bundle_with_benefits_files_is_loaded_and_settled_on_load(bundle):
    report = bundle_load(path=bundle)
    assert report.files["special_outpatient_claims.csv"].created == 3
    assert BenefitParameters.objects.get(fund="employee", year=2025).deductible == Decimal("500.00")
    assert SpecialDisease.objects.get(code="D2").annual_cap is None
    # H1 is level 3 (employee 0.88): S1 eligible 3000, deductible 500: r2(2500 × 0.88) = 2200
    assert parts("S1") == ("2200.00", "0.00", "560.00", "1240.00")  # poor: 70 % of 800
    # H2 level 2 (0.90): class II default cap 5000 − 2200 = 2800 left; r2(4000 × 0.90) = 3600 → 2800
    assert parts("S2") == ("2800.00", "0.00", "840.00", "360.00")
    assert parts("S3") == ("5400.00", "0.00", "3600.00", "1000.00")  # resident level 3 0.60; destitute: the remainder
    assert ItemizedClaim.objects.filter(source="special_outpatient").count() == 3
    # every patient stored with its '+' history row carrying the file's values (COPY on PostgreSQL)
    patients = {p.patient_id: (p.fund, p.category) for p in Patient.objects.all()}
    assert patients and {h.patient_id: (h.fund, h.category) for h in Patient.history.filter(history_type="+")} == patients
    assert Patient.history.count() == len(patients)
    again = bundle_load(path=bundle)
    assert again.files["special_outpatient_claims.csv"].unchanged == 3
    assert not SettlementCorrection.objects.exists()


def test_reloading_with_a_changed_category_resettles_and_records_corrections(bundle):
    bundle_load(path=bundle)
    (bundle / "patients.csv").write_text(PATIENTS.replace("P201,employee,poor", "P201,employee,ordinary"), encoding="utf-8")
    bundle_load(path=bundle)
    assert parts("S1") == ("2200.00", "0.00", "0.00", "1800.00")
    assert Patient.objects.get(patient_id="P201").history.count() == 2
    assert SettlementCorrection.objects.filter(claim__claim_no__in=["S1", "S2"]).count() == 2


def test_every_bad_benefits_row_is_named_and_nothing_is_loaded(bundle):
    (bundle / "patients.csv").write_text(PATIENTS + "P9,employee,rich\nP201,resident,poor\n", encoding="utf-8")
    (bundle / "special_diseases.csv").write_text(DISEASES + "D3,x,III,-1\n", encoding="utf-8")
    (bundle / "special_outpatient_claims.csv").write_text(
        CLAIMS
        + "S4,H1,employee,P201,D9,2025-03-01,10.00,10.00\n"
        + "S5,H1,resident,P201,D2,2025-03-01,10.00,10.00\n"
        + "S6,H1,employee,P7,D2,2025-03-01,10.00,20.00\n"
        + "S7,H9,employee,P7,D2,2025-02-30,10.00,1.001\n"
        + "S1,H1,employee,P201,D2,2025-03-01,4000.00,3000.00\n",
        encoding="utf-8",
    )
    params = json.loads((bundle / "params.json").read_text(encoding="utf-8"))
    params["benefits"] = {"resident": {"critical_ratio": "1.5"}, "assistance_ratio": "0.99"}
    (bundle / "params.json").write_text(json.dumps(params), encoding="utf-8")
    with pytest.raises(BundleInvalid) as invalid:
        bundle_load(path=bundle)
    found = {(e.file, e.line, e.column) for e in invalid.value.errors}
    assert {
        ("params.json", 0, "benefits.resident.critical_ratio"), ("params.json", 0, "benefits.subsistence_uplift"),
        ("patients.csv", 4, "category"), ("patients.csv", 5, "patient_id"),
        ("special_diseases.csv", 4, "class"), ("special_diseases.csv", 4, "annual_cap"),
        ("special_outpatient_claims.csv", 5, "disease_code"), ("special_outpatient_claims.csv", 6, "fund"),
        ("special_outpatient_claims.csv", 7, "eligible_cost"), ("special_outpatient_claims.csv", 8, "institution_code"),
        ("special_outpatient_claims.csv", 8, "service_date"), ("special_outpatient_claims.csv", 8, "eligible_cost"),
        ("special_outpatient_claims.csv", 9, "claim_no"),
    } <= found
    assert not SpecialOutpatientClaim.objects.exists() and not Patient.objects.exists()


def test_a_reloaded_claim_moved_to_another_month_moves_its_pool_payment(bundle):
    bundle_load(path=bundle)
    (bundle / "special_outpatient_claims.csv").write_text(CLAIMS.replace("S3,H1,resident,P203,D1,2025-05-01", "S3,H1,resident,P203,D1,2025-06-02"),
                                                          encoding="utf-8")
    bundle_load(path=bundle)
    payment = ItemizedClaim.objects.get(source="special_outpatient", claim_no="S3")
    assert (str(payment.month), payment.approved_amount) == ("2025-06-01", Decimal("5400.00"))


def test_new_claims_of_a_year_settled_before_they_are_stored_equal_claims_stored_then_settled(bundle, tmp_path, monkeypatch):
    """PostgreSQL settles the new claims of a year with none stored before it stores them (one COPY
    with their split); the result is what storing them, then settling, gives (the same bundle loaded
    into a second region that way)."""
    from django.db import connection

    import benefits.services as services
    from tests.conftest import require_service

    require_service(connection.vendor == "postgresql", "PostgreSQL")
    (bundle / "special_outpatient_claims.csv").write_text(
        CLAIMS + "S4,H2,resident,P9,D1,2025-06-30,500.00,0.00\nS5,H1,employee,P201,D1,2025-12-31,800.00,800.00\n", encoding="utf-8")
    other = tmp_path / "other"
    shutil.copytree(bundle, other)
    params = json.loads((other / "params.json").read_text(encoding="utf-8"))
    params["region"] = {"code": "R2", "name": "第二区"}
    (other / "params.json").write_text(json.dumps(params, ensure_ascii=False), encoding="utf-8")

    stores = []
    store = services._pending_store
    monkeypatch.setattr(services, "_pending_store", lambda **kwargs: stores.append(len(kwargs["pending"])) or store(**kwargs))
    bundle_load(path=bundle)
    assert stores == [5]  # the year's five claims, settled before they were stored
    monkeypatch.setattr(services, "is_postgres", lambda: False)  # the claims stored first, then settled
    bundle_load(path=other)
    assert len(stores) == 1

    def stored(region_code):
        claims = sorted(
            (c.claim_no, c.institution.code, c.fund, c.patient_id, c.disease_code, c.service_date, c.total_cost, c.eligible_cost,
             c.source, c.basic, c.critical, c.assistance, c.patient_pay, c.explanation, c.settled_at is not None)
            for c in SpecialOutpatientClaim.objects.filter(region__code=region_code).select_related("institution"))
        pool = sorted((i.institution.code, i.claim_no, i.fund, i.month, i.patient_id, i.claimed_amount, i.approved_amount, i.status)
                      for i in ItemizedClaim.objects.filter(region__code=region_code, source="special_outpatient").select_related("institution"))
        return claims, pool

    first, second = stored(json.loads((bundle / "params.json").read_text(encoding="utf-8"))["region"]["code"]), stored("R2")
    assert first == second
    claims, pool = first
    assert len(claims) == 5 and all(settled for *_rest, settled in claims) and len(pool) == 5
    assert claims[0][9:13] == (Decimal("2200.00"), Decimal("0.00"), Decimal("560.00"), Decimal("1240.00"))  # S1, as settled above
    assert claims[0][13]["ratio"] == "0.880000" and claims[0][13]["deductible"] == "500.00"  # its explanation


def test_a_claim_stored_meanwhile_turns_the_pending_claims_into_new_ones_and_the_year_is_settled_whole(bundle, monkeypatch):
    """A claim of the year stored between the loader's look at the stored years and its settlement
    (at the counter): the loader stores its claims as any new claim and settles the whole year."""
    import datetime as dt

    from django.db import connection

    import benefits.services as services
    from benefits.choices import ClaimSource
    from drg.models import Institution
    from tests.conftest import require_service

    require_service(connection.vendor == "postgresql", "PostgreSQL")
    pending_frame = services._pending_frame

    def then_a_counter_claim(**kwargs):
        frame = pending_frame(**kwargs)
        region = kwargs["region"]
        SpecialOutpatientClaim.objects.create(
            region=region, institution=Institution.objects.get(region=region, code="H2"), claim_no="K1", fund="employee",
            patient_id="P201", disease_code="D2", service_date=dt.date(2025, 2, 1), total_cost=Decimal("1000.00"),
            eligible_cost=Decimal("1000.00"), source=ClaimSource.API)
        return frame

    monkeypatch.setattr(services, "_pending_frame", then_a_counter_claim)
    report = bundle_load(path=bundle)
    assert report.benefits_settled == [(4, 4, 0)]  # the three of the file and the counter's, settled together
    loaded = {c.claim_no: (c.basic, c.critical, c.assistance, c.patient_pay, c.explanation) for c in SpecialOutpatientClaim.objects.all()}
    assert all(c.settled_at for c in SpecialOutpatientClaim.objects.all())
    # K1 (February, H2 level 2: 0.90) comes first in the year and takes the deductible: r2(500 × 0.90);
    # S1 (H1 level 3: 0.88) then has none left: r2(3000 × 0.88)
    assert loaded["K1"][0] == Decimal("450.00") and loaded["S1"][0] == Decimal("2640.00")
    SpecialOutpatientClaim.objects.update(basic=None, critical=None, assistance=None, patient_pay=None, explanation={}, settled_at=None)
    services.special_outpatient_settle(region=SpecialOutpatientClaim.objects.first().region, year=2025)
    assert {c.claim_no: (c.basic, c.critical, c.assistance, c.patient_pay, c.explanation) for c in SpecialOutpatientClaim.objects.all()} == loaded
    assert ItemizedClaim.objects.filter(source="special_outpatient").count() == 4
