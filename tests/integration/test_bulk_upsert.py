"""common.bulk.copy_upsert: a few rows go by one INSERT … ON CONFLICT, many by COPY; both leave the
same table behind (inserted, updated, untouched rows)."""
import datetime as dt
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from common.bulk import COPY_UPSERT_ROWS, copy_upsert
from drg.models import Institution, Region
from settlement.choices import ItemizedSource
from settlement.models import ItemizedClaim

pytestmark = pytest.mark.django_db


def _claims(institution, numbers, amount_of):
    return [
        ItemizedClaim(region_id=institution.region_id, institution=institution, claim_no=f"C{n:05d}", fund="resident",
                      month=dt.date(2025, 1 + n % 12, 1), patient_id=f"P{n}", claimed_amount=amount_of(n), approved_amount=amount_of(n),
                      source=ItemizedSource.SPECIAL_OUTPATIENT, status="approved")
        for n in numbers
    ]


@pytest.mark.parametrize("rows", [3, COPY_UPSERT_ROWS], ids=["insert-on-conflict", "copy"])
def test_copy_upsert_inserts_updates_and_leaves_the_rest(rows):
    region = Region.objects.create(code="UPS", name="upsert")
    institution = Institution.objects.create(region=region, code="H1", name="h1", level=2, category="general")
    assert copy_upsert(ItemizedClaim, _claims(institution, range(rows), lambda n: Decimal(n) + Decimal("0.01")),
                       unique_fields=["institution", "claim_no", "source"], update_fields=["approved_amount"]) == rows
    # the second half again with new amounts, and as many new claims
    again = _claims(institution, range(rows // 2, rows + rows // 2), lambda n: Decimal(n) + Decimal("0.50"))
    assert copy_upsert(ItemizedClaim, again, unique_fields=["institution", "claim_no", "source"], update_fields=["approved_amount"]) == len(again)

    stored = dict(ItemizedClaim.objects.filter(region=region).values_list("claim_no", "approved_amount"))
    expected = {f"C{n:05d}": Decimal(n) + (Decimal("0.01") if n < rows // 2 else Decimal("0.50")) for n in range(rows + rows // 2)}
    assert stored == expected
    # not in update_fields: the claimed amount of an updated claim stays as first stored
    claimed = dict(ItemizedClaim.objects.filter(region=region, claim_no=f"C{rows - 1:05d}").values_list("claim_no", "claimed_amount"))
    assert claimed == {f"C{rows - 1:05d}": Decimal(rows - 1) + Decimal("0.01")}
    assert not ItemizedClaim.objects.filter(region=region, submitted_at__isnull=True).exists()


def test_next_ids_draws_distinct_unused_ids_by_their_range_or_one_by_one_when_the_range_has_gaps():
    from django.db import connection

    from common.bulk import next_ids
    from tests.conftest import require_service

    require_service(connection.vendor == "postgresql", "PostgreSQL")
    region = Region.objects.create(code="IDS", name="ids")
    institution = Institution.objects.create(region=region, code="H1", name="h1", level=2, category="general")
    first = next_ids(ItemizedClaim, 1000)
    assert first.tolist() == list(range(first[0], first[0] + 1000))  # drawn alone: one range
    with connection.cursor() as cursor:  # a range with gaps, as when another session draws at the same time
        cursor.execute("SELECT pg_get_serial_sequence('settlement_itemizedclaim', 'id')")
        sequence = cursor.fetchone()[0]
        cursor.execute(f"ALTER SEQUENCE {sequence} INCREMENT BY 3")
        gapped = next_ids(ItemizedClaim, 500)
        cursor.execute(f"ALTER SEQUENCE {sequence} INCREMENT BY 1")
    assert len(set(gapped.tolist())) == 500 and gapped.min() > first.max()
    assert set(gapped.tolist()) >= set(range(int(gapped.min()), int(gapped.max()) + 1, 3))  # read one by one: every third id
    later = ItemizedClaim.objects.create(region=region, institution=institution, claim_no="X", fund="resident", month=dt.date(2025, 1, 1),
                                         patient_id="P", claimed_amount=Decimal("1"), approved_amount=Decimal("1"),
                                         source=ItemizedSource.SPECIAL_OUTPATIENT, status="approved")
    assert later.pk > gapped.max()  # the table's own inserts go on after every drawn id


def test_the_regions_first_pool_rows_are_copied_in_and_later_ones_upserted_to_the_same_table():
    """settlement.services.itemized_payments_upsert_columns: while the region has no payment of the
    source, the rows are COPYed straight in (no staging table); afterwards the same call updates the
    stored ones and adds the new, and an adjudicated claim of the same number is left alone."""
    from unittest import mock

    from django.db import connection

    from common import bulk
    from common.users import system_user
    from settlement.services import itemized_payments_upsert_columns
    from tests.conftest import require_service

    require_service(connection.vendor == "postgresql", "PostgreSQL")
    region = Region.objects.create(code="POOL", name="pool")
    institution = Institution.objects.create(region=region, code="H1", name="h1", level=2, category="general")
    ItemizedClaim.objects.create(region=region, institution=institution, claim_no="C00001", fund="employee", month=dt.date(2025, 1, 1),
                                 patient_id="X", approved_amount=Decimal("9.99"), source=ItemizedSource.ADJUDICATED, status="approved")

    def pay(numbers, cents):
        return itemized_payments_upsert_columns(region=region, source=ItemizedSource.SPECIAL_OUTPATIENT, columns={
            "institution_id": [institution.pk] * len(numbers), "claim_no": [f"C{n:05d}" for n in numbers],
            "fund": ["resident"] * len(numbers), "month": [f"2025-{1 + n % 12:02d}-01" for n in numbers],
            "patient_id": [f"P{n}" for n in numbers], "amount": [f"{n}.{cents:02d}" for n in numbers],
        })

    with mock.patch.object(bulk, "_upsert_staged", side_effect=AssertionError("staged")):
        assert pay(range(1, 5), 10) == 4  # the region's first: no staging table
    with mock.patch.object(bulk, "_upsert_staged", wraps=bulk._upsert_staged) as staged:
        assert pay(range(3, 7), 20) == 4  # 3 and 4 again, 5 and 6 new
    assert staged.call_count == 1
    rows = ItemizedClaim.objects.filter(region=region, source=ItemizedSource.SPECIAL_OUTPATIENT)
    assert dict(rows.values_list("claim_no", "approved_amount")) == {
        "C00001": Decimal("1.10"), "C00002": Decimal("2.10"), "C00003": Decimal("3.20"), "C00004": Decimal("4.20"),
        "C00005": Decimal("5.20"), "C00006": Decimal("6.20")}
    assert set(rows.values_list("status", "decided_by_id", "fund")) == {("approved", system_user().pk, "resident")}
    assert not rows.filter(decided_at__isnull=True).exists() and not rows.filter(submitted_at__isnull=True).exists()
    adjudicated = ItemizedClaim.objects.get(region=region, source=ItemizedSource.ADJUDICATED)
    assert (adjudicated.claim_no, adjudicated.approved_amount, adjudicated.patient_id) == ("C00001", Decimal("9.99"), "X")


def test_binary_copy_casts_each_column_to_its_database_type_exactly_or_refuses():
    """common.bulk.copy_columns_binary (a region's first cases): amounts from exact text, numbers or
    decimals, dates from ISO text or dates, small integers, booleans, text and time stamps arrive as
    they were; a value the cast would change, or a column type it cannot send, is refused."""
    from django.db import DataError, connection, transaction

    from common.bulk import copy_columns_binary
    from tests.conftest import require_service

    require_service(connection.vendor == "postgresql", "PostgreSQL")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE bin_t (amount numeric(16,2), day date, grade smallint, flag boolean, "
                       "code varchar(8), at timestamptz, n bigint, doc jsonb, blob bytea)")
    at = dt.datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=dt.timezone.utc)
    copy_columns_binary("bin_t", {
        "amount": ["0.00", "-12.50", "99999999999999.99", None], "day": ["0001-01-01", "2024-02-29", None, "9999-12-31"],
        "grade": [0, 4, 32767, None], "flag": [True, False, None, True], "code": ["A1", "", "病案号B", None],
        "at": at, "n": [2**62, -1, 0, None],
    }, 4)
    copy_columns_binary("bin_t", {"amount": [Decimal("7.05")], "day": [dt.date(2025, 12, 31)], "n": [5]}, 1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT amount, day, grade, flag, code, at, n FROM bin_t")
        rows = cursor.fetchall()
    assert rows == [
        (Decimal("0.00"), dt.date(1, 1, 1), 0, True, "A1", at, 2**62),
        (Decimal("-12.50"), dt.date(2024, 2, 29), 4, False, "", at, -1),
        (Decimal("99999999999999.99"), None, 32767, None, "病案号B", at, 0),
        (None, dt.date(9999, 12, 31), None, True, None, at, None),
        (Decimal("7.05"), dt.date(2025, 12, 31), None, None, None, None, 5),
    ]
    with pytest.raises(Exception, match="(?i)rescal|data loss|precision"):  # 3 decimals into numeric(16,2)
        copy_columns_binary("bin_t", {"amount": ["1.005"]}, 1)
    with pytest.raises(Exception, match="(?i)overflow|out of bounds|integer value"):
        copy_columns_binary("bin_t", {"grade": [32768]}, 1)
    with pytest.raises(DataError, match="too long"), transaction.atomic():  # varchar(8): PostgreSQL's own check
        copy_columns_binary("bin_t", {"code": ["123456789"]}, 1)
    with pytest.raises(ValueError, match="bin_t.blob is bytea"):
        copy_columns_binary("bin_t", {"blob": [b"x"]}, 1)
    # jsonb goes as its text, which PostgreSQL checks as it would from CSV
    copy_columns_binary("bin_t", {"n": [10, 11, 12], "doc": ['{"ratio": "0.920000", "b": [1, null]}', "{}", None]}, 3)
    with connection.cursor() as cursor:
        cursor.execute("SELECT n, doc::text, doc ->> 'ratio' FROM bin_t WHERE n BETWEEN 10 AND 12 ORDER BY n")
        assert cursor.fetchall() == [(10, '{"b": [1, null], "ratio": "0.920000"}', "0.920000"), (11, "{}", None), (12, None, None)]
    with pytest.raises(DataError, match="(?i)json"), transaction.atomic():
        copy_columns_binary("bin_t", {"doc": ['{"ratio": ']}, 1)


def test_a_models_rows_go_by_binary_copy_unless_a_column_has_no_binary_form_or_a_float_meets_a_decimal(monkeypatch):
    """common.bulk.copy_create_columns: binary when every column has a binary form, the values as
    the text path stores them; a float bound for a decimal goes as CSV text, which PostgreSQL rounds
    as the text reads (0.285 → 0.29; a binary cast would round the float's binary value to 0.28);
    a jsonb column goes as its text (a bytea one has no binary form here)."""
    from django.db import connection

    from common import bulk
    from common.models import ReviewStatus
    from tests.conftest import require_service

    require_service(connection.vendor == "postgresql", "PostgreSQL")
    used = []
    for name in ("copy_columns", "copy_columns_binary"):
        real = getattr(bulk, name)
        monkeypatch.setattr(bulk, name, lambda table, *args, _real=real, _name=name, **kw: used.append((_name, table)) or _real(table, *args, **kw))
    region = Region.objects.create(code="RBIN", name="二进制")
    institution = Institution.objects.create(region=region, code="H1", name="一院", level=3, category="general")

    def claims(number: str, amounts, claimed=None) -> None:
        bulk.copy_create_columns(ItemizedClaim, {
            "region_id": region.pk, "institution_id": institution.pk, "claim_no": [f"{number}{i}" for i in range(len(amounts))],
            "fund": "employee", "month": "2025-02-01", "patient_id": "P1", "approved_amount": amounts, "claimed_amount": claimed,
            "source": ItemizedSource.ADJUDICATED, "status": ReviewStatus.APPROVED,
        }, len(amounts))

    claims("B", ["12.30", "0.29", "5"], claimed=[Decimal("12.30"), None, Decimal("7.05")])
    claims("F", np.array([0.285, 12.3]))
    assert used == [("copy_columns_binary", "settlement_itemizedclaim"), ("copy_columns", "settlement_itemizedclaim")]
    stored = {no: (claimed, approved) for no, claimed, approved in
              ItemizedClaim.objects.filter(region=region).values_list("claim_no", "claimed_amount", "approved_amount")}
    assert stored == {"B0": (Decimal("12.30"), Decimal("12.30")), "B1": (None, Decimal("0.29")), "B2": (Decimal("7.05"), Decimal("5.00")),
                      "F0": (None, Decimal("0.29")), "F1": (None, Decimal("12.30"))}
    assert all(c.status == ReviewStatus.APPROVED and c.month == dt.date(2025, 2, 1) and c.submitted_at is not None
               for c in ItemizedClaim.objects.filter(region=region))
    assert bulk._binary_types("benefits_specialoutpatientclaim", ["claim_no", "explanation"], strict=False) == {
        "claim_no": pa.string(), "explanation": pa.large_string()}
