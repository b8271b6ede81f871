"""drg_case partitioned by region on PostgreSQL (drg.partitions): a first load fills a table of the
region's own and attaches it, a region made any other way gets its empty table at once, the keys and
checks hold in either, and a refused attach leaves nothing. PostgreSQL only (required under CI)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from drg.models import Case, Institution, Region
from common.users import system_user
from drg.partitions import cases_partitioned, partition_exists, partition_load, partition_name
from tests.conftest import require_service
from tests.golden.bulk import REGION

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _postgres():
    require_service(connection.vendor == "postgresql", "PostgreSQL")
    assert cases_partitioned()


def load(path: Path) -> None:
    call_command("load_bundle", str(path), stdout=StringIO(), stderr=StringIO())


def _sql(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _file_cases(bundle: Path) -> int:
    return len((bundle / "cases.csv").read_text(encoding="utf-8-sig").strip().splitlines()) - 1


def _partition_indexes(region_id: int) -> set[str]:
    """The parent indexes that the region's table's indexes are attached to."""
    return {parent for (parent,) in _sql(
        "SELECT p.inhparent::regclass::text FROM pg_index i JOIN pg_inherits p ON p.inhrelid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass", [partition_name(region_id)])}


def _column_defaults(region_id: int) -> list[str]:
    return [name for (name,) in _sql(
        "SELECT a.attname FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
        "WHERE d.adrelid = %s::regclass", [partition_name(region_id)])]


def test_a_first_load_fills_the_regions_own_table_attached_with_every_index(worked_bundle):
    before = _sql("SELECT nextval(pg_get_serial_sequence('drg_case', 'id'))")[0][0]
    load(worked_bundle)

    region = Region.objects.get(code=REGION)
    assert partition_exists(region.pk)
    stored = _sql(f"SELECT count(*), count(DISTINCT id), min(id), count(DISTINCT created_at), "
                  f"bool_and(region_id = %s), bool_and(created_at = updated_at) FROM {partition_name(region.pk)}", [region.pk])
    assert stored == [(_file_cases(worked_bundle), _file_cases(worked_bundle), before + 1, 1, True, True)]
    assert Case.objects.count() == _file_cases(worked_bundle)
    assert _partition_indexes(region.pk) == {"drg_case_pkey", "case_no_unique_per_institution", "case_pool_period_idx",
                                             "case_patient_idx"}
    assert _column_defaults(region.pk) == []  # the load's defaults (ids, region, time stamps) are gone
    # the ORM's next case draws its id from the same sequence, after the loaded ones
    institution = Institution.objects.filter(region=region).first()
    case = Case.objects.create(
        region=region, institution=institution, case_no="ORM-1", fund="employee", patient_id="P-ORM",
        admission_date=dt.date(2024, 3, 1), discharge_date=dt.date(2024, 3, 2), drg_code="X", total_cost=D("1.00"),
        self_pay=D("0"))
    assert case.pk == Case.objects.exclude(pk=case.pk).order_by("-pk").values_list("pk", flat=True).first() + 1
    # the case number stays unique per institution in the region's table
    with pytest.raises(IntegrityError), transaction.atomic():
        Case.objects.create(
            region=region, institution=institution, case_no="ORM-1", fund="employee", patient_id="P-ORM",
            admission_date=dt.date(2024, 3, 1), discharge_date=dt.date(2024, 3, 2), drg_code="X", total_cost=D("1.00"),
            self_pay=D("0"))

    # a second load of the region goes into the table it has (nothing new, nothing duplicated)
    load(worked_bundle)
    assert Case.objects.count() == _file_cases(worked_bundle) + 1


def test_case_numbers_and_patient_ids_compare_byte_by_byte_in_every_regions_table(worked_bundle):
    """docs/decisions.md item 64: the identifiers are COLLATE "C" on drg_case and so on the table a
    first load makes (LIKE drg_case) and attaches; they sort by bytes whatever the server's locale,
    and the lookups the loader and the counter make still use their indexes."""
    load(worked_bundle)
    region = Region.objects.get(code=REGION)
    for table in ("drg_case", partition_name(region.pk)):
        assert dict(_sql("SELECT column_name, collation_name FROM information_schema.columns "
                         "WHERE table_name = %s AND column_name IN ('case_no', 'patient_id', 'fund')", [table])) == {
            "case_no": "C", "patient_id": "C", "fund": None}
    institution = Institution.objects.filter(region=region).first()
    for number in ("b-1", "B-2", "a-3", "Ä-4", "Z-5"):
        Case.objects.create(
            region=region, institution=institution, case_no=number, fund="employee", patient_id=f"P-{number}",
            admission_date=dt.date(2024, 3, 1), discharge_date=dt.date(2024, 3, 2), drg_code="X", total_cost=D("1.00"),
            self_pay=D("0"))
    ordered = list(Case.objects.filter(case_no__in=["b-1", "B-2", "a-3", "Ä-4", "Z-5"]).order_by("case_no").values_list("case_no", flat=True))
    assert ordered == ["B-2", "Z-5", "a-3", "b-1", "Ä-4"]  # uppercase before lowercase, then beyond ASCII
    # an equality with a text parameter (default collation) takes the column's and its index
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {partition_name(region.pk)}")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN SELECT id FROM drg_case WHERE region_id = %s AND patient_id = ANY(%s::text[])",
                       [region.pk, ["P-b-1", "P-Z-5"]])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"{partition_name(region.pk)}_patient_id_idx" in plan


def test_a_region_deleted_takes_its_empty_table_with_it():
    region = Region.objects.create(code="RDEL", name="删除")
    name = partition_name(region.pk)
    assert partition_exists(region.pk)
    region.delete()
    assert _sql("SELECT to_regclass(%s)", [name]) == [(None,)]


def test_a_region_made_otherwise_has_its_empty_table_and_a_load_fills_it_by_the_usual_copy(worked_bundle):
    region = Region.objects.create(code=REGION, name="工作示例")
    assert partition_exists(region.pk)
    assert _sql(f"SELECT count(*) FROM {partition_name(region.pk)}") == [(0,)]

    load(worked_bundle)

    assert _sql(f"SELECT count(*) FROM {partition_name(region.pk)}") == [(_file_cases(worked_bundle),)]
    assert Case.objects.filter(region=region).count() == _file_cases(worked_bundle)


def test_an_attach_that_finds_an_unknown_institution_is_refused_and_leaves_nothing():
    region = Region(code="RPART", name="分区")
    region._cases_partition_by_load = True
    region.save()
    assert not partition_exists(region.pk)
    now = timezone.now()
    columns = {
        "region_id": region.pk, "institution_id": [987654321], "case_no": ["C1"], "fund": ["employee"],
        "patient_id": ["P1"], "admission_date": [dt.date(2024, 1, 1)], "discharge_date": [dt.date(2024, 1, 2)],
        "drg_code": ["X"], "total_cost": ["10.00"], "self_pay": ["0.00"], "discharge_status": ["normal"],
        "tcm_treatment": [False], "tcm_cost": ["0.00"], "surgery_grade": [0], "malignant_tumor_surgery": [False],
        "created_at": now, "updated_at": now,
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        partition_load(region.pk, columns, 1)
    assert not partition_exists(region.pk)
    assert _sql("SELECT to_regclass(%s)", [partition_name(region.pk)]) == [(None,)]

    columns["institution_id"] = [Institution.objects.create(region=region, code="H1", name="医院", level=3, category="general").pk]
    # a row the table's checks refuse fails the COPY itself (sent by a writer thread), as clearly
    with pytest.raises(IntegrityError, match="case_self_pay_within_total"), transaction.atomic():
        partition_load(region.pk, {**columns, "self_pay": ["10.01"]}, 1)
    assert not partition_exists(region.pk)
    with transaction.atomic():
        assert partition_load(region.pk, columns, 1)
    assert list(Case.objects.filter(region=region).values_list("case_no", "total_cost", "created_at")) == [("C1", D("10.00"), now)]
    assert not partition_load(region.pk, columns, 1)  # it has its table now: the caller inserts as usual


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
def test_two_loads_creating_their_regions_at_once_both_load(worked_bundle, tmp_path, monkeypatch):
    """Both store their institutions before either attaches its table (a barrier holds the first
    at its attach until the second gets there, for at most a few seconds): without the loads being
    serialized, PostgreSQL would find them deadlocked and abort one."""
    import json
    import shutil
    import threading

    from django.db import connections

    from drg import partitions

    bundles = []
    for n in (1, 2):
        path = tmp_path / f"b{n}"
        shutil.copytree(worked_bundle, path)
        params = json.loads((path / "params.json").read_text(encoding="utf-8"))
        params["region"]["code"] = f"PAR{n}"
        (path / "params.json").write_text(json.dumps(params, ensure_ascii=False), encoding="utf-8")
        bundles.append(path)
    barrier = threading.Barrier(2)
    real_attach = partitions._attach

    def attach_at_the_barrier(*args, **kwargs):
        try:
            barrier.wait(timeout=3)
        except threading.BrokenBarrierError:  # the other load waits for this one to commit
            pass
        return real_attach(*args, **kwargs)

    monkeypatch.setattr(partitions, "_attach", attach_at_the_barrier)
    system_user()  # as in any database that has loaded before (both would create it otherwise, one waiting)
    failures = []

    def run(path):
        try:
            load(path)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(repr(error))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(path,)) for path in bundles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    for code in ("PAR1", "PAR2"):
        region = Region.objects.get(code=code)
        assert partition_exists(region.pk)
        assert Case.objects.filter(region=region).count() == _file_cases(worked_bundle)


# --- a load that creates its region outside any transaction stores its cases beside it ---------------

BESIDE = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
# P001's stay (discharged 2025-01-10, 8000.00 − 1600.00) comes before its claims
BESIDE_CLAIMS = (
    "claim_no,institution_code,fund,patient_id,disease_code,service_date,total_cost,eligible_cost\n"
    "S1,H1,employee,P001,D1,2025-02-01,90000.00,90000.00\n"
    "S2,H1,employee,P001,D1,2025-03-01,200000.00,200000.00\n"
    "S3,H2,resident,P105,D2,2025-12-30,4000.00,3000.00\n"
)


def _benefits_bundle(worked_bundle: Path, path: Path, code: str | None = None) -> Path:
    import json
    import shutil

    shutil.copytree(worked_bundle, path)
    (path / "special_diseases.csv").write_text("code,name,class,annual_cap\nD1,尿毒症透析,I,\nD2,癫痫,II,\n", encoding="utf-8")
    (path / "special_outpatient_claims.csv").write_text(BESIDE_CLAIMS, encoding="utf-8")
    params = json.loads((path / "params.json").read_text(encoding="utf-8"))
    params["benefits"] = {"employee": {"deductible": "500", "shared_annual_cap": "250000"}}
    if code:
        params["region"] = {"code": code, "name": "第二区"}
    (path / "params.json").write_text(json.dumps(params, ensure_ascii=False), encoding="utf-8")
    return path


def _unattached() -> list[str]:
    return [name for (name,) in _sql("SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
                                     "AND relname ~ '^drg_case_r[0-9]+$'")]


def _stored(code: str) -> dict:
    from benefits.models import SpecialOutpatientClaim
    from drg.models import SpecialReview
    from settlement.models import ItemizedClaim

    region = Region.objects.get(code=code)
    return {
        "cases": sorted(Case.objects.filter(region=region).values_list(
            "institution__code", "case_no", "fund", "patient_id", "admission_date", "discharge_date", "drg_code", "total_cost",
            "self_pay", "discharge_status", "tcm_treatment", "tcm_cost", "surgery_grade", "malignant_tumor_surgery")),
        "reviews": sorted(SpecialReview.objects.filter(institution__region=region).values_list(
            "case__institution__code", "case__case_no", "approved_cost", "status")),
        "claims": sorted(
            (c.claim_no, c.institution.code, c.fund, c.patient_id, c.service_date, c.total_cost, c.eligible_cost,
             c.basic, c.critical, c.assistance, c.patient_pay, c.explanation, c.settled_at is not None)
            for c in SpecialOutpatientClaim.objects.filter(region=region).select_related("institution")),
        "itemized": sorted(ItemizedClaim.objects.filter(region=region).values_list(
            "institution__code", "claim_no", "source", "fund", "month", "patient_id", "approved_amount", "status")),
    }


def _load_failing(monkeypatch, owner, name: str, message: str, bundle: Path) -> None:
    """bundle_load of `bundle` with ``owner.name`` raising RuntimeError(message): the load raises it."""
    from exchange.bundle import bundle_load

    def failing(*args, **kwargs):
        raise RuntimeError(message)

    monkeypatch.setattr(owner, name, failing)
    with pytest.raises(RuntimeError, match=message):
        bundle_load(path=bundle)


@BESIDE
def test_a_load_creating_its_region_stores_its_cases_beside_its_transaction_as_it_would_inside(worked_bundle, tmp_path):
    """The cases go into the region's table on a connection of their own while the records and the
    claims are written (the claims settled against the cases' stays, held in memory meanwhile); the
    table is attached with the indexes it was given. Everything stored is what a load inside a
    caller's transaction (the cases stored in it) stores for the same files."""
    from exchange.bundle import bundle_load

    beside = bundle_load(path=_benefits_bundle(worked_bundle, tmp_path / "beside"))
    assert beside.write_timings["cases beside"] > 0 and beside.write_timings["cases check"] > 0
    with transaction.atomic():
        inside = bundle_load(path=_benefits_bundle(worked_bundle, tmp_path / "inside", code="R2"))
    assert "cases beside" not in inside.write_timings and "cases check" not in inside.write_timings

    for code in (REGION, "R2"):
        region = Region.objects.get(code=code)
        assert _partition_indexes(region.pk) == {"drg_case_pkey", "case_no_unique_per_institution", "case_pool_period_idx",
                                                 "case_patient_idx"}
        assert len(_sql("SELECT 1 FROM pg_indexes WHERE tablename = %s", [partition_name(region.pk)])) == 4
    stored = _stored(REGION)
    assert stored == _stored("R2")
    assert len(stored["cases"]) == _file_cases(worked_bundle) and stored["reviews"]
    claims = {claim[0]: claim for claim in stored["claims"]}
    assert all(claim[-1] for claim in claims.values())  # all settled
    # P001's stay took 6400.00 of the shared annual cap of 250000.00 before S1 and S2
    assert claims["S1"][11]["cap_left_before"] == "243600.00"
    assert claims["S2"][11]["cap_left_before"] == str(D("243600.00") - claims["S1"][7])
    assert _unattached() == []


@BESIDE
def test_a_load_that_fails_after_storing_its_cases_beside_leaves_no_table(worked_bundle, tmp_path, monkeypatch):
    import exchange.bundle as loader

    _load_failing(monkeypatch, loader, "_benefits_store", "the claims could not be stored", _benefits_bundle(worked_bundle, tmp_path / "b"))
    assert not Region.objects.filter(code=REGION).exists() and not Case.objects.exists()
    assert _unattached() == []


@BESIDE
def test_a_failure_storing_the_cases_beside_fails_the_load_and_leaves_nothing(worked_bundle, monkeypatch):
    from drg import partitions
    from exchange.bundle import bundle_load

    def failing(cursor, name):
        raise RuntimeError(f"no index for {name}")

    monkeypatch.setattr(partitions, "_index_like_parent", failing)
    with pytest.raises(RuntimeError, match="no index for drg_case_r"):
        bundle_load(path=worked_bundle)
    assert not Region.objects.filter(code=REGION).exists() and not Case.objects.exists()
    assert _unattached() == []


@BESIDE
def test_a_table_a_dead_load_left_is_dropped_by_the_next_load_creating_a_region(worked_bundle):
    from exchange.bundle import bundle_load

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE drg_case_r987654 (LIKE drg_case INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    other = Region.objects.create(code="ROTHER", name="其他")  # its empty table, attached at once
    assert _unattached() == ["drg_case_r987654"]
    bundle_load(path=worked_bundle)
    assert _unattached() == []
    assert partition_exists(other.pk) and partition_exists(Region.objects.get(code=REGION).pk)


@BESIDE
def test_a_failure_before_the_load_learns_of_the_fill_drops_its_table(worked_bundle, monkeypatch):
    """cases_apply started the fill, then failed before returning it: it drops the table itself."""
    from drg import services

    _load_failing(monkeypatch, services, "_touched_frame", "the touched stays could not be listed", worked_bundle)
    assert not Region.objects.filter(code=REGION).exists() and not Case.objects.exists()
    assert _unattached() == []


def _edited(worked_bundle: Path, path: Path, **lines: tuple[int, str]) -> Path:
    """A copy of the worked bundle with one line of some files replaced: file stem -> (line number, text)."""
    import shutil

    shutil.copytree(worked_bundle, path)
    for stem, (number, text) in lines.items():
        file = path / f"{stem}.csv"
        content = file.read_text(encoding="utf-8").splitlines()
        content[number - 1] = text
        file.write_text("\n".join(content) + "\n", encoding="utf-8")
    return path


def _nothing_stored() -> None:
    from settlement.models import ItemizedClaim

    assert not Region.objects.filter(code=REGION).exists() and not Case.objects.exists()
    assert not ItemizedClaim.objects.exists() and not Institution.objects.exists()
    assert _unattached() == []


def _fills_recorded(loader, monkeypatch) -> list:
    """The fills the loader starts (cases_fill_beside), recorded as it starts them."""
    fills, fill_beside = [], loader.cases_fill_beside
    monkeypatch.setattr(loader, "cases_fill_beside", lambda **kwargs: fills.append(fill_beside(**kwargs)) or fills[-1])
    return fills


@BESIDE
@pytest.mark.parametrize("lines, expected", [
    # a bad case row, found while the records are written: they are rolled back
    ({"cases": (3, "c02,H1,employee,P002,2025-01-05,2025-01-28,GB25,30000.001,6000.00,normal,0,0,4,1")},
     [("cases.csv", 3, "total_cost", "more than 2 decimals")]),
    # bad rows of the cases and of a record file, reported together
    ({"cases": (3, "c01,H1,employee,P001,2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal,0,0,3,1"),
      "itemized_claims": (2, "T001,H9,employee,2025-02,P201,1500.00")},
     [("cases.csv", 3, "case_no", "first at line 2"), ("itemized_claims.csv", 2, "institution_code", "H9")]),
    # a repeated key alone: the cases were being stored meanwhile, their table goes
    ({"cases": (3, "c01,H1,employee,P001,2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal,0,0,3,1")},
     [("cases.csv", 3, "case_no", "first at line 2")]),
    # special reviews name cases: checked once the cases checked beside are joined
    ({"special_reviews": (2, "H1,c99,80000.00")}, [("special_reviews.csv", 2, "case_no", "c99")]),
], ids=["bad case", "bad case and bad record", "repeated key", "review of an unknown case"])
def test_a_new_regions_cases_checked_while_its_records_are_written_report_bad_rows_and_leave_nothing(
    worked_bundle, tmp_path, lines, expected,
):
    """The records are written while the cases are checked on a thread of their own: every bad row
    is reported, line by line, as when everything is checked first, and nothing is stored."""
    from exchange.bundle import BundleInvalid, bundle_load

    with pytest.raises(BundleInvalid) as invalid:
        bundle_load(path=_edited(worked_bundle, tmp_path / "b", **lines))
    errors = invalid.value.errors
    assert [(e.file, e.line, e.column) for e in errors] == [(file, line, column) for file, line, column, _ in expected]
    assert all(part in e.reason for e, (*_, part) in zip(errors, expected))
    _nothing_stored()


@BESIDE
def test_a_failure_checking_the_cases_beside_fails_the_load_and_leaves_nothing(worked_bundle, monkeypatch):
    import exchange.bundle as loader

    _load_failing(monkeypatch, loader.domain, "parse_cases", "the cases could not be checked", worked_bundle)
    _nothing_stored()


@BESIDE
def test_a_failure_writing_the_records_while_the_cases_are_checked_waits_for_the_check_and_leaves_nothing(
    worked_bundle, monkeypatch,
):
    import threading

    import exchange.bundle as loader

    checked = threading.Event()
    parse_cases = loader.domain.parse_cases

    def slow_parse(*args, **kwargs):
        result = parse_cases(*args, **kwargs)
        checked.set()
        return result

    def failing(self, *args, **kwargs):
        raise RuntimeError("the records could not be stored")

    monkeypatch.setattr(loader.domain, "parse_cases", slow_parse)
    monkeypatch.setattr(loader._Writer, "sync_frame", failing)
    with pytest.raises(RuntimeError, match="the records could not be stored"):
        loader.bundle_load(path=worked_bundle)
    assert checked.is_set()  # the load waited for the check's thread before it returned
    assert not any(thread.name == "cases-check" for thread in threading.enumerate())
    _nothing_stored()


@BESIDE
def test_a_new_regions_cases_are_stored_from_their_checks_thread_once_the_institutions_are(worked_bundle, monkeypatch):
    """The fill starts as soon as the cases are checked and the region's institutions written, from
    the check's thread, not once the load has written its records; the cases stored are the file's."""
    import threading

    import exchange.bundle as loader

    started_on = []
    fill_beside = loader.cases_fill_beside

    def recording(**kwargs):
        started_on.append((threading.current_thread().name, sorted(kwargs["institution_ids"])))
        return fill_beside(**kwargs)

    monkeypatch.setattr(loader, "cases_fill_beside", recording)
    report = loader.bundle_load(path=worked_bundle)
    assert started_on == [("cases-check", ["H1", "H2", "H3"])]
    assert report.files["cases.csv"].created == Case.objects.count() == _file_cases(worked_bundle)
    assert _unattached() == []


@BESIDE
def test_a_failure_checking_the_other_files_waits_for_the_cases_check_and_leaves_nothing(worked_bundle, monkeypatch):
    import threading

    import exchange.bundle as loader

    _load_failing(monkeypatch, loader.domain, "parse_itemized_claims", "the claims could not be checked", worked_bundle)
    assert not any(thread.name == "cases-check" for thread in threading.enumerate())
    _nothing_stored()


@BESIDE
def test_cases_apply_refuses_a_fill_that_is_not_its_plans_new_cases(worked_bundle):
    """A fill handed to cases_apply must hold exactly the plan's new cases of that region."""
    from drg.choices import ChangeSource
    from drg.services import cases_apply, cases_plan
    from exchange.domain import bundle as domain

    class Fill:
        region_id, count = 0, 1

    region = Region.objects.create(code="RFILL", name="填充")
    frame, _ = domain.read_csv_bytes((worked_bundle / "cases.csv").read_bytes(), domain.CASES)
    typed, _ = domain.parse_cases(frame, known_institutions={"H1", "H2", "H3"}, known_groups=set(frame["drg_code"]))
    classified, _ = cases_plan(region=None, rows=typed)
    with pytest.raises(ValueError, match="is not the plan's"):
        cases_apply(region=region, classified=classified, source=ChangeSource.BUNDLE, fill=Fill())


@BESIDE
def test_a_repeated_key_in_cases_stored_from_their_checks_thread_is_refused_by_the_table_and_named(
    worked_bundle, tmp_path, monkeypatch,
):
    """Cases stored from their check's thread are not searched for repeated keys first: the
    table's unique key refuses them, then the repeats are named as the check names them."""
    import exchange.bundle as loader

    fills = _fills_recorded(loader, monkeypatch)
    bundle = _edited(worked_bundle, tmp_path / "b",
                     cases=(4, "c01,H1,employee,P001,2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal,0,0,3,1"))
    with pytest.raises(loader.BundleInvalid) as invalid:
        loader.bundle_load(path=bundle)
    assert len(fills) == 1  # the cases were being stored
    assert [(e.file, e.line, e.column, e.reason) for e in invalid.value.errors] == [
        ("cases.csv", 4, "case_no", "duplicate key (institution_code, case_no) = ('H1', 'c01'); first at line 2")]
    _nothing_stored()


@BESIDE
def test_a_new_region_whose_cases_file_has_no_row_gets_its_empty_table_with_every_index(worked_bundle, tmp_path):
    """A cases.csv of a header alone, checked and stored from its check's thread: the region's table
    is made, indexed and attached, empty, as for any new region."""
    import shutil

    from exchange.bundle import bundle_load

    bundle = shutil.copytree(worked_bundle, tmp_path / "b")
    header = (bundle / "cases.csv").read_text(encoding="utf-8").splitlines()[0]
    (bundle / "cases.csv").write_text(header + "\n", encoding="utf-8")
    (bundle / "special_reviews.csv").unlink()  # they would name cases
    report = bundle_load(path=bundle)
    region = Region.objects.get(code=REGION)
    assert report.files["cases.csv"].created == 0 and not Case.objects.exists()
    assert partition_exists(region.pk) and len(_partition_indexes(region.pk)) == 4
    assert _unattached() == []


@BESIDE
def test_a_new_regions_cases_stored_part_by_part_as_they_pass_their_checks_are_the_files(worked_bundle, tmp_path, monkeypatch):
    """The cases are checked a part at a time and each part that passes goes to the fill at once
    (one COPY a part): what is stored is what a load inside a transaction stores for the same files."""
    import threading

    import exchange.bundle as loader

    monkeypatch.setattr(loader, "CHECK_PART_ROWS", 5)
    fills, added = _fills_recorded(loader, monkeypatch), []
    add = loader.cases_fill_add
    monkeypatch.setattr(loader, "cases_fill_add", lambda fill, **kwargs: added.append(len(kwargs["rows"])) or add(fill, **kwargs))
    beside = loader.bundle_load(path=_benefits_bundle(worked_bundle, tmp_path / "beside"))
    cases = _file_cases(worked_bundle)
    assert len(fills) == 1 and fills[0].count == cases == beside.files["cases.csv"].created
    assert added == [min(5, cases - start) for start in range(5, cases, 5)]  # every part after the first
    with transaction.atomic():
        loader.bundle_load(path=_benefits_bundle(worked_bundle, tmp_path / "inside", code="R2"))
    assert _stored(REGION) == _stored("R2")
    assert len(_partition_indexes(Region.objects.get(code=REGION).pk)) == 4
    assert not any(thread.name.startswith("cases-") for thread in threading.enumerate())
    assert _unattached() == []


@BESIDE
def test_a_bad_case_in_a_later_part_aborts_the_fill_already_started_and_names_every_bad_row(worked_bundle, tmp_path, monkeypatch):
    """A part that fails after earlier ones went to the fill (the region and its records being
    written meanwhile): the fill rolls back, the whole file is checked again so that its bad rows are
    named as a check of the whole file names them, and nothing is stored."""
    import threading

    import exchange.bundle as loader

    monkeypatch.setattr(loader, "CHECK_PART_ROWS", 5)
    fills = _fills_recorded(loader, monkeypatch)
    bundle = _edited(worked_bundle, tmp_path / "b",
                     cases=(14, "c13,H1,employee,P013,2025-02-05,2025-02-01,GB25,-1.00,6000.00,normal,0,0,9,1"))
    with pytest.raises(loader.BundleInvalid) as invalid:
        loader.bundle_load(path=bundle)
    assert len(fills) == 1 and fills[0].count == 10  # two good parts had gone to the fill
    with pytest.raises(Exception, match="failed their checks"):
        fills[0].attach()
    frame, _ = loader.domain.read_csv_bytes((bundle / "cases.csv").read_bytes(), loader.domain.CASES)
    _typed, whole = loader.domain.parse_cases(frame, known_institutions={"H1", "H2", "H3"}, known_groups=set(frame["drg_code"]))
    errors = [(e.file, e.line, e.column, e.reason) for e in invalid.value.errors]
    assert sorted(errors) == sorted((e.file, e.line, e.column, e.reason) for e in whole)
    assert {e[1] for e in errors} == {14} and len(whole) >= 3  # the amount, the dates, the grade
    assert not any(thread.name.startswith("cases-") for thread in threading.enumerate())
    _nothing_stored()
