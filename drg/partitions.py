"""The cases table partitioned by region on PostgreSQL (docs/loading.md, "One table per region").

``drg_case`` is partitioned by ``LIST (region_id)``: every region has a table of its own,
``drg_case_r<id>``, created with the region (empty, attached at once) or, on the first load of a
region by a bundle, filled while it is still a table of its own and attached afterwards. A table
with no index takes a million rows at the speed of a bare COPY; attaching it builds its indexes in
one pass each and checks its institutions in one query, instead of maintaining four indexes row by
row (the patient index in random key order) and checking each row's institution at commit.

What partitioning asks of the schema, done by migration drg 0007:
- the primary key is (id, region_id) and the case number is unique per (institution, case_no,
  region_id): a region is a function of the institution, so that is the same rule as before;
- the three foreign keys into ``drg_case`` (corrections, correction requests, special reviews) are
  not database constraints any more (PostgreSQL's unique key on ``id`` alone would have to span the
  partitions); cases are never deleted by the product, and Django keeps their on_delete behaviour.

SQLite (the demo) keeps one plain table; every function here is then a no-op or answers False.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import numpy as np
from django.db import connection

from common.bulk import copy_columns, is_column

TABLE = "drg_case"


def cases_partitioned() -> bool:
    """Whether drg_case is the partitioned table (PostgreSQL after migration drg 0007)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s))", [TABLE])
        return bool(cursor.fetchone()[0])


def partition_name(region_id: int) -> str:
    return f"{TABLE}_r{int(region_id)}"


def partition_exists(region_id: int) -> bool:
    """Whether the region's table is attached to drg_case."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = to_regclass(%s) AND inhrelid = to_regclass(%s))",
            [TABLE, partition_name(region_id)])
        return bool(cursor.fetchone()[0])


def _standalone(cursor, region_id: int) -> str:
    """Create the region's table, shaped like drg_case, without index or foreign key; its CHECK on
    region_id lets ATTACH skip the scan that would prove every row belongs to the region."""
    name = partition_name(region_id)
    cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    cursor.execute(f"ALTER TABLE {name} ADD CONSTRAINT {name}_region CHECK (region_id = {int(region_id)})")
    return name


def _attach(cursor, region_id: int) -> None:
    """Attach the region's table: PostgreSQL builds the partition's share of drg_case's indexes and
    validates its institution foreign key here. Takes SHARE UPDATE EXCLUSIVE on drg_case until the
    transaction ends (reads and writes of other regions go on; another attach waits)."""
    cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {partition_name(region_id)} FOR VALUES IN ({int(region_id)})")


def partition_ensure(region_id: int) -> bool:
    """Give the region its (empty) table if drg_case is partitioned and it has none; True if created."""
    if not cases_partitioned() or partition_exists(region_id):
        return False
    with connection.cursor() as cursor:
        _standalone(cursor, region_id)
        _attach(cursor, region_id)
    return True


# pg_advisory_xact_lock key of the loads that create a region (first_loads_serialize)
FIRST_LOAD_LOCK = int.from_bytes(hashlib.blake2b(b"drg.partitions.first_load", digest_size=8).digest(), "big", signed=True)


def first_loads_serialize() -> bool:
    """Hold every other load that creates a region off until this transaction ends, waiting first
    for one that holds them off now (PostgreSQL with drg_case partitioned; True when taken).

    Two such loads would otherwise deadlock: each stores its institutions (ROW EXCLUSIVE on
    drg_institution until commit), then attaches its region's table, which takes SHARE UPDATE
    EXCLUSIVE on drg_case and then SHARE ROW EXCLUSIVE on drg_institution to check the table's
    institutions: the first to attach waits for the other's institutions, the other for drg_case."""
    if not cases_partitioned():
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [FIRST_LOAD_LOCK])
    return True


def partition_load(region_id: int, columns: dict[str, Any], count: int) -> bool:
    """The first cases of a region that has no table yet: COPY them into a new table of the region's
    own, then attach it (indexes built once, institutions checked in one query). False, writing
    nothing, when drg_case is not partitioned or the region already has its table: the caller then
    inserts into drg_case as usual. Inside the caller's transaction."""
    if not cases_partitioned() or partition_exists(region_id):
        return False
    # A value the same for every row (the region, the load's time stamps) is not sent a million
    # times: it is the column's default while the COPY runs, and so are the ids, drawn from
    # drg_case's own identity sequence as an insert into drg_case would draw them.
    constants = {column: value for column, value in columns.items() if not is_column(value)}
    rows = {column: value for column, value in columns.items() if column not in constants}
    with connection.cursor() as cursor:
        name = _standalone(cursor, region_id)
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
        defaults = {"id": f"nextval({_literal(cursor.fetchone()[0])}::regclass)",
                    **{column: _literal(value) for column, value in constants.items()}}
        cursor.execute(f"ALTER TABLE {name} " + ", ".join(
            f"ALTER COLUMN {connection.ops.quote_name(column)} SET DEFAULT {default}" for column, default in defaults.items()))
        copy_columns(name, rows, count)
        cursor.execute(f"ALTER TABLE {name} " + ", ".join(
            f"ALTER COLUMN {connection.ops.quote_name(column)} DROP DEFAULT" for column in defaults))
        _attach(cursor, region_id)
    return True


def _literal(value: Any) -> str:
    """A constant as an SQL literal for a column default (PostgreSQL casts it to the column's type)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    text = value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)
    return "'" + text.replace("'", "''") + "'"


def region_saved(sender, instance, created: bool, **kwargs) -> None:
    """post_save of Region: a new region gets its empty table at once, so any insert of its cases
    finds it. The bundle loader creating a region sets ``_cases_partition_by_load`` and creates the
    table itself, filled (partition_load) or empty (partition_ensure)."""
    if created and not getattr(instance, "_cases_partition_by_load", False):
        partition_ensure(instance.pk)


def region_deleted(sender, instance, **kwargs) -> None:
    """post_delete of Region: its table of cases goes with it (it is empty: a region with cases cannot
    be deleted, Case.region is PROTECT). Dropping a partition locks drg_case until the transaction
    ends, which for a region's deletion is a moment."""
    if cases_partitioned() and partition_exists(instance.pk):
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {partition_name(instance.pk)}")
