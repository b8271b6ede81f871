"""The cases table partitioned by region on PostgreSQL (docs/loading.md, "One table per region").

``drg_case`` is partitioned by ``LIST (region_id)``: every region has a table of its own,
``drg_case_r<id>``, created with the region (empty, attached at once) or, on the first load of a
region by a bundle, filled while it is still a table of its own and attached afterwards. A table
with no index takes a million rows at the speed of a bare COPY; attaching it builds its indexes in
one pass each and checks its institutions in one query, instead of maintaining four indexes row by
row (the patient index in random key order) and checking each row's institution at commit.
When the load runs in a transaction of its own, the table is filled, indexed and committed on a
second connection while the load writes its other records, and only attached by the load
(PartitionFill): attaching then builds nothing.

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
import itertools
import queue
import threading
import time
from typing import Any, Iterable

import numpy as np
from django.db import connection, transaction

from common.bulk import copy_columns_binary, is_column

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


def _fill(cursor, region_id: int, parts: Iterable[tuple[dict[str, Any], int]]) -> str:
    """Create the region's table and COPY its cases into it, one COPY a part (columns, count);
    returns its name.

    A value the same for every row (the region, the load's time stamps) is not sent a million
    times: it is the column's default while the COPY runs, and so are the ids, drawn from
    drg_case's own identity sequence as an insert into drg_case would draw them. Every part has
    the first part's such values (ValueError otherwise)."""
    name = _standalone(cursor, region_id)  # while the first part may still be being checked
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
    sequence = cursor.fetchone()[0]
    parts = iter(parts)
    first = next(parts, ({}, 0))
    constants = {column: value for column, value in first[0].items() if not is_column(value)}
    defaults = {"id": f"nextval({_literal(sequence)}::regclass)",
                **{column: _literal(value) for column, value in constants.items()}}
    cursor.execute(f"ALTER TABLE {name} " + ", ".join(
        f"ALTER COLUMN {connection.ops.quote_name(column)} SET DEFAULT {default}" for column, default in defaults.items()))
    for columns, count in itertools.chain([first], parts):
        part_constants = {column: value for column, value in columns.items() if not is_column(value)}
        if part_constants != constants:
            raise ValueError(f"a part of the cases of region {region_id} with other constant values: {part_constants} against {constants}")
        rows = {column: value for column, value in columns.items() if column not in constants}
        copy_columns_binary(name, rows, count)  # numbers and dates not parsed from text by the server
    cursor.execute(f"ALTER TABLE {name} " + ", ".join(
        f"ALTER COLUMN {connection.ops.quote_name(column)} DROP DEFAULT" for column in defaults))
    return name


def partition_load(region_id: int, columns: dict[str, Any], count: int) -> bool:
    """The first cases of a region that has no table yet: COPY them into a new table of the region's
    own, then attach it (indexes built once, institutions checked in one query). False, writing
    nothing, when drg_case is not partitioned or the region already has its table: the caller then
    inserts into drg_case as usual. Inside the caller's transaction."""
    if not cases_partitioned() or partition_exists(region_id):
        return False
    with connection.cursor() as cursor:
        _fill(cursor, region_id, [(columns, count)])
        _attach(cursor, region_id)
    return True


def _index_like_parent(cursor, name: str) -> None:
    """Give the table `name` (not attached yet) each of drg_case's indexes, the primary key and
    unique constraints as constraints, so that ATTACH PARTITION finds them all and builds none."""
    cursor.execute(
        "SELECT pg_get_indexdef(i.indexrelid), c.contype, pg_get_constraintdef(c.oid) "
        "FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid "
        "WHERE i.indrelid = %s::regclass ORDER BY c.contype NULLS LAST, i.indexrelid", [TABLE])
    for definition, kind, constraint in cursor.fetchall():
        if kind in ("p", "u"):
            cursor.execute(f"ALTER TABLE {name} ADD {constraint}")
        else:
            using = definition.split(" USING ", 1)[1]  # "btree (patient_id)", with any WHERE as it is
            cursor.execute(f"CREATE INDEX ON {name} USING {using}")


class FillAborted(Exception):
    """The rows a PartitionFill was being given failed their checks: it stored nothing."""


_END, _ABORT = object(), object()


class PartitionFill:
    """A region's first cases stored on a database connection of their own while the load that
    created the region goes on writing its other records (docs/loading.md, "beside the load").

    A thread creates the region's table, COPYs the cases into it, builds the indexes drg_case
    asks for and commits: a table that is not attached is no part of drg_case, so nothing of it is
    visible as cases until ``attach`` (in the load's transaction, which sees it committed) makes it
    the region's partition; PostgreSQL then takes the built indexes over and checks the cases'
    institutions in one query. A load that fails after the table was committed drops it
    (``discard``); a table a crash left behind is dropped by the next load that creates a region
    (``orphans_drop``). Only for a load holding first_loads_serialize's lock, which keeps any other
    region-creating load, and so any other such table, away until it ends.

    The cases come as given at creation (``columns``, ``count``), or part by part while they are
    still being checked: ``put`` each part as it passes, then ``close``; ``abort`` when a part
    fails, and the thread rolls back, having committed nothing. ``count`` is the cases put so far."""

    def __init__(self, region_id: int, columns: dict[str, Any] | None = None, count: int = 0):
        self.region_id, self.name, self.count = region_id, partition_name(region_id), 0
        self.seconds: float = 0.0
        self._error: BaseException | None = None
        self._parts: queue.Queue = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"cases-{self.name}", daemon=True)
        self._thread.start()
        if columns is not None:
            self.put(columns, count)
            self.close()

    def put(self, columns: dict[str, Any], count: int) -> None:
        """One more part of the cases (drg_case column -> values, as _fill takes them)."""
        if self._closed:
            raise ValueError(f"the fill of region {self.region_id} takes no more cases")
        self.count += count
        self._parts.put((columns, count))

    def close(self) -> None:
        """No part follows: the thread indexes the table and commits."""
        if not self._closed:
            self._closed = True
            self._parts.put(_END)

    def abort(self) -> None:
        """The cases are not to be stored: the thread rolls back (nothing if already closed)."""
        if not self._closed:
            self._closed = True
            self._parts.put(_ABORT)

    def _given(self) -> Iterable[tuple[dict[str, Any], int]]:
        while (part := self._parts.get()) is not _END:
            if part is _ABORT:
                raise FillAborted(f"the cases of region {self.region_id} failed their checks: none stored")
            yield part

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            with transaction.atomic(), connection.cursor() as cursor:  # this thread's own connection
                _fill(cursor, self.region_id, self._given())
                _index_like_parent(cursor, self.name)
        except BaseException as error:  # handed to the load's thread by attach()
            self._error = error
        finally:
            connection.close()
            self.seconds = time.perf_counter() - started

    def attach(self) -> None:
        """Wait for the table, then attach it inside the caller's transaction; raises what the
        thread raised (nothing of it was committed then)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        with connection.cursor() as cursor:
            _attach(cursor, self.region_id)

    def discard(self) -> None:
        """After the load's transaction rolled back: drop the committed table if it is not a
        partition (an attach rolled back with the load leaves it a table of its own). A fill still
        open is aborted first."""
        self.abort()
        self._thread.join()
        dropper = threading.Thread(target=_drop_unattached, args=(self.name,), name=f"drop-{self.name}", daemon=True)
        dropper.start()
        dropper.join()


def _drop_unattached(name: str) -> None:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT relispartition FROM pg_class WHERE oid = to_regclass(%s)", [name])
            row = cursor.fetchone()
            if row is not None and not row[0]:
                cursor.execute(f"DROP TABLE {name}")
    finally:
        connection.close()


def orphans_drop() -> list[str]:
    """Drop the region tables that are not partitions of drg_case: what a region-creating load
    that died after storing its cases beside itself (PartitionFill) left behind. Only under
    first_loads_serialize's lock, so that no running load's table is taken for an orphan."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition AND relname ~ %s "
            "AND relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = %s::regclass)",
            [rf"^{TABLE}_r[0-9]+$", TABLE])
        names = [name for (name,) in cursor.fetchall()]
        for name in names:
            cursor.execute(f"DROP TABLE {connection.ops.quote_name(name)}")
    return names


def partition_fill_beside(region_id: int, columns: dict[str, Any], count: int) -> PartitionFill | None:
    """Start storing a region's first cases beside the load (PartitionFill); None, writing nothing,
    when drg_case is not partitioned or the region already has its table."""
    if not cases_partitioned() or partition_exists(region_id):
        return None
    return PartitionFill(region_id, columns, count)


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
    table itself, filled (partition_load, or PartitionFill beside its transaction) or empty
    (partition_ensure)."""
    if created and not getattr(instance, "_cases_partition_by_load", False):
        partition_ensure(instance.pk)


def region_deleted(sender, instance, **kwargs) -> None:
    """post_delete of Region: its table of cases goes with it (it is empty: a region with cases cannot
    be deleted, Case.region is PROTECT). Dropping a partition locks drg_case until the transaction
    ends, which for a region's deletion is a moment."""
    if cases_partitioned() and partition_exists(instance.pk):
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {partition_name(instance.pk)}")
