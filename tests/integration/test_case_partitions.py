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

    from drg import services

    bundles = []
    for n in (1, 2):
        path = tmp_path / f"b{n}"
        shutil.copytree(worked_bundle, path)
        params = json.loads((path / "params.json").read_text(encoding="utf-8"))
        params["region"]["code"] = f"PAR{n}"
        (path / "params.json").write_text(json.dumps(params, ensure_ascii=False), encoding="utf-8")
        bundles.append(path)
    barrier = threading.Barrier(2)
    real_load = services.partition_load

    def load_at_the_barrier(*args, **kwargs):
        try:
            barrier.wait(timeout=3)
        except threading.BrokenBarrierError:  # the other load waits for this one to commit
            pass
        return real_load(*args, **kwargs)

    monkeypatch.setattr(services, "partition_load", load_at_the_barrier)
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
