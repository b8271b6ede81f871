"""Bulk reads and writes below the ORM: COPY on PostgreSQL (psycopg 3), executemany elsewhere.

Used where a pool's cases or results (up to millions of rows) move between the database and
pandas; the ORM is used for everything else.
"""
from __future__ import annotations

import datetime as dt
import enum
import io
import json
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from django.db import connection
from django.utils import timezone
from psycopg.copy import QueuedLibpqWriter



def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def read_frame(sql: str, params: Sequence, columns: Sequence[str], dtypes: dict | None = None) -> pd.DataFrame:
    """Run a SELECT and return its rows as a DataFrame (PostgreSQL: COPY ... TO STDOUT, CSV)."""
    if is_postgres():
        with connection.cursor() as cursor:
            raw = cursor.connection  # the psycopg Connection
            with connection.wrap_database_errors, raw.cursor() as pg_cursor:  # psycopg errors as Django's
                query = pg_cursor.mogrify(sql, list(params)) if params else sql
                buffer = io.BytesIO()
                with pg_cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)") as copy:
                    for block in copy:
                        buffer.write(block)
        buffer.seek(0)
        if buffer.getbuffer().nbytes == 0:
            return pd.DataFrame({c: pd.Series(dtype=(dtypes or {}).get(c, object)) for c in columns})
        return pd.read_csv(buffer, header=None, names=list(columns), dtype=dtypes, keep_default_na=False, na_values=[""])
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        rows = cursor.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    if dtypes:
        frame = frame.astype({k: v for k, v in dtypes.items() if k in frame.columns and v is not str})
    return frame


def ids_of(codes: pd.Series, ids: dict) -> np.ndarray:
    """ids[code] for every code as int64, each distinct code looked up once (Series.map converts a
    million Arrow-held strings to Python objects first); KeyError for a code not in ``ids``."""
    positions, distinct = pd.factorize(codes, use_na_sentinel=False)
    return np.array([ids[code] for code in distinct], dtype="int64")[positions]


COLUMN_TYPES = (pa.Array, pa.ChunkedArray, pd.Series, np.ndarray, list, tuple)


def is_column(value: Any) -> bool:
    """Whether a value of a column map (arrow_column input) is one value per row, not one for all."""
    return isinstance(value, COLUMN_TYPES)


def arrow_column(value: Any, count: int) -> pa.Array | pa.ChunkedArray:
    """A column as Arrow: an Arrow array as it is; numpy, pandas or a list converted (None, NaN and
    pd.NA are null); any other value repeated for every row, a date or time as its ISO text (Arrow
    formats a million timestamps with their time zone four times slower than the rest of a row)."""
    if isinstance(value, (dt.date, dt.datetime)):
        return pa.repeat(value.isoformat(), count)
    if not is_column(value):
        return pa.repeat(value, count)
    if isinstance(value, (pa.Array, pa.ChunkedArray)):
        column = value
    elif isinstance(value, pd.Series):
        column = pa.array(value.to_numpy(dtype=object) if value.dtype == object else value, from_pandas=True)
    else:
        column = pa.array(value, from_pandas=True)
    if len(column) != count:
        raise ValueError(f"a column of {len(column)} values among columns of {count}")
    return column


def columns_to_rows(columns: dict[str, Any], count: int) -> Iterable[tuple]:
    """The rows of `columns` (as arrow_column takes them) as tuples of Python values, for
    executemany where there is no COPY."""
    return zip(*(arrow_column(value, count).to_pylist() for value in columns.values()))


COPY_SLICE_ROWS = 50_000  # rows of the CSV formatted at a time by copy_columns


def copy_columns(table: str, columns: dict[str, Any], count: int) -> None:
    """COPY `count` rows given column by column (database column name -> arrow_column input) into
    `table` (PostgreSQL). Arrow writes the CSV in C++, so a million rows cost no Python string per
    value; null is NULL, an empty text an empty text (quoted)."""
    if not count:
        return
    table_data = pa.table({name: arrow_column(value, count) for name, value in columns.items()})
    options = pa_csv.WriteOptions(include_header=False)

    def slices() -> Iterable[memoryview]:
        for start in range(0, count, COPY_SLICE_ROWS):
            sink = pa.BufferOutputStream()
            pa_csv.write_csv(table_data.slice(start, COPY_SLICE_ROWS), sink, options)
            yield memoryview(sink.getvalue())

    _copy_in(table, list(columns), "csv", slices())


def _copy_in(table: str, names: list[str], data_format: str, parts: Iterable) -> None:
    """`COPY table (names) FROM STDIN` of the data `parts` yields, in `data_format` (csv, binary): a
    thread sends each part while the next is made (PostgreSQL parses one while Arrow or pgpq,
    which let go of the GIL, makes the next); psycopg errors raised as Django's."""
    columns = ", ".join(connection.ops.quote_name(name) for name in names)
    with connection.cursor() as cursor:
        with connection.wrap_database_errors, cursor.connection.cursor() as pg_cursor:
            sql = f"COPY {connection.ops.quote_name(table)} ({columns}) FROM STDIN WITH (FORMAT {data_format})"
            with pg_cursor.copy(sql, writer=QueuedLibpqWriter(pg_cursor)) as copy:
                for part in parts:
                    copy.write(part)


# a jsonb column is sent as its JSON text, PostgreSQL checking it as from CSV (pgpq's Jsonb output);
# large_string is the Arrow type of jsonb columns alone, text and varchar being string
_JSONB = pa.large_string()
# PostgreSQL type -> the Arrow type pgpq encodes as it (binary COPY reads each column's own format)
_BINARY_TYPES = {
    "int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(), "bool": pa.bool_(), "date": pa.date32(),
    "varchar": pa.string(), "text": pa.string(), "timestamptz": pa.timestamp("us", tz="UTC"), "jsonb": _JSONB,
}


def _binary_types(table: str, names: list[str], *, strict: bool = True) -> dict[str, pa.DataType] | None:
    """The Arrow type each of `table`'s columns `names` is sent as in a binary COPY; for a column of
    a type not in _BINARY_TYPES nor a numeric of declared precision and scale, ValueError (``strict``)
    or None."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname, t.typname, a.atttypmod FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped", [table])
        found = {name: (kind, modifier) for name, kind, modifier in cursor.fetchall()}
    types = {}
    for name in names:
        kind, modifier = found[name]
        if kind == "numeric" and modifier >= 4:
            types[name] = pa.decimal128((modifier - 4) >> 16 & 0xFFFF, (modifier - 4) & 0xFFFF)
        elif kind in _BINARY_TYPES:
            types[name] = _BINARY_TYPES[kind]
        elif strict:
            raise ValueError(f"{table}.{name} is {kind}: no binary COPY for it")
        else:
            return None
    return types


def copy_columns_binary(table: str, columns: dict[str, Any], count: int, *,
                        types: dict[str, pa.DataType] | None = None) -> None:
    """copy_columns in PostgreSQL's binary format (PostgreSQL): each column, as arrow_column takes
    it, is cast to its database column's type (amounts from their exact text or as decimals, dates
    from ISO text; a cast that would lose anything raises) and encoded by pgpq in Rust. The server
    then reads numbers and dates as they are instead of parsing text: a million cases COPY in
    2.8–2.9 s instead of 4.0–4.4 s on the bench machine (docs/loading.md)."""
    if not count:
        return
    from pgpq import ArrowToPostgresBinaryEncoder
    from pgpq.encoders import LargeStringEncoderBuilder
    from pgpq.schema import Jsonb

    types = types or _binary_types(table, list(columns))
    data = pa.table({name: arrow_column(value, count).cast(types[name]) for name, value in columns.items()})
    if any(kind == _JSONB for kind in types.values()):  # pgpq takes a builder for every column then
        encoder = ArrowToPostgresBinaryEncoder.new_with_encoders(data.schema, {
            field.name: LargeStringEncoderBuilder.new_with_output(field, Jsonb()) if field.type == _JSONB
            else ArrowToPostgresBinaryEncoder.infer_encoder(field) for field in data.schema})
    else:
        encoder = ArrowToPostgresBinaryEncoder(data.schema)

    def parts() -> Iterable[bytes]:
        yield encoder.write_header()
        for batch in data.to_batches(max_chunksize=COPY_SLICE_ROWS):
            yield encoder.write_batch(batch)
        yield encoder.finish()

    _copy_in(table, list(columns), "binary", parts())


def copy_create(model, objs: list) -> list:
    """bulk_create through COPY on PostgreSQL (ids drawn from the table's sequence first, so the
    objects come back with their pk like bulk_create's); bulk_create elsewhere. No signals, no
    save(); the values are the objects' attributes as set (`field.attname`), adapted by psycopg."""
    if not objs:
        return objs
    if not is_postgres():
        return model.objects.bulk_create(objs, batch_size=2_000)
    from psycopg.types.json import Jsonb

    meta = model._meta
    pk = meta.pk
    table = meta.db_table
    fields = [f for f in meta.concrete_fields]
    missing = [o for o in objs if getattr(o, pk.attname) is None]
    with connection.cursor() as cursor:
        for obj, value in zip(missing, next_ids(model, len(missing)).tolist()):
            setattr(obj, pk.attname, value)
        stamped = [f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
        for obj in objs:
            for field in stamped:
                field.pre_save(obj, add=True)
        json_fields = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
        names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        attnames = [f.attname for f in fields]
        with connection.wrap_database_errors, cursor.connection.cursor() as pg_cursor:  # psycopg errors as Django's
            with pg_cursor.copy(f"COPY {connection.ops.quote_name(table)} ({names}) FROM STDIN") as copy:
                for obj in objs:
                    row = [getattr(obj, name) for name in attnames]
                    if json_fields:
                        row = [Jsonb(v) if n in json_fields and v is not None else v for n, v in zip(attnames, row)]
                    copy.write_row(row)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs


def _db_constant(value: Any) -> Any:
    """One value for every row in database form: a model instance as its pk, a choice as its value."""
    if isinstance(value, enum.Enum):
        return value.value
    if hasattr(value, "_meta") and hasattr(value, "pk"):
        return value.pk
    return value


def _every_field(model, columns: dict[str, Any], now) -> dict[str, Any]:
    """`columns` (field attname -> column or one value) completed with every other concrete field
    but an unnamed primary key: auto_now ones the present moment, the rest their default. Keyed by
    attname, values in database form."""
    out = {}
    for field in model._meta.concrete_fields:
        if field.attname in columns:
            value = columns[field.attname]
        elif field.primary_key:
            continue  # the table's identity default
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = now
        else:
            value = field.get_default()
            if isinstance(value, (dict, list)):
                value = json.dumps(value)
        out[field.attname] = value if is_column(value) else _db_constant(value)
    return out


def _copy_fields(model, columns: dict[str, Any], count: int) -> None:
    """COPY a model's rows given by field attname: in binary when every column has a binary form
    (copy_columns_binary: the values cast exactly to the columns' types, nothing for the server to
    parse), else as CSV (a bytea column, say)."""
    if not count:
        return
    meta = model._meta
    table = meta.db_table
    named = {meta.get_field(name).column: arrow_column(value, count) for name, value in columns.items()}
    types = _binary_types(table, list(named), strict=False)
    # a binary float cast to a decimal would round its binary value, where PostgreSQL rounds the
    # float's shortest text (0.285 is 0.28 one way, 0.29 the other): floats go as CSV text
    if types is not None and not any(pa.types.is_floating(named[name].type) for name in named):
        copy_columns_binary(table, named, count, types=types)
    else:
        copy_columns(table, named, count)


def next_ids(model, count: int) -> np.ndarray:
    """`count` primary keys drawn from the model's table sequence (PostgreSQL). The database answers
    with the range it drew, not every value; if another session drew from the sequence at the same
    time (the range is wider than `count`), those values are left as a gap and `count` more are
    drawn and read one by one."""
    if not count:
        return np.empty(0, dtype="int64")
    meta = model._meta
    # the sequence is named once: pg_get_serial_sequence is only STABLE, so inside the draw it would
    # be looked up again for every value (ten times the cost of nextval itself); a regclass literal
    # is resolved when the statement is planned
    draw = "SELECT nextval(%s::regclass) AS id FROM generate_series(1, %s)"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [meta.db_table, meta.pk.column])
        params = [cursor.fetchone()[0], count]
        cursor.execute(f"SELECT min(id), max(id) FROM ({draw}) AS drawn", params)
        low, high = cursor.fetchone()
        if high - low + 1 == count:
            return np.arange(low, high + 1, dtype="int64")
        cursor.execute(draw, params)
        return np.fromiter((value for (value,) in cursor.fetchall()), dtype="int64", count=count)


def foreign_keys_check_now(table: str | None = None) -> None:
    """Run the deferred foreign-key checks the transaction has queued so far now (PostgreSQL): those
    of the rows written to `table`, or all of them; what it writes afterwards is checked at commit
    as before. A violation raises here, inside the transaction, as it would at commit. Run while
    the rows' pages are still cached, or while another connection works (drg.partitions.PartitionFill),
    instead of at commit. (Every deferrable constraint of the schema is a foreign key Django made
    INITIALLY DEFERRED, so DEFERRED puts them back as they were.)"""
    if not is_postgres():
        return
    with connection.cursor() as cursor:
        names = "ALL"
        if table is not None:
            cursor.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f' AND condeferred", [table])
            names = ", ".join(connection.ops.quote_name(name) for (name,) in cursor.fetchall())
            if not names:
                return
        cursor.execute(f"SET CONSTRAINTS {names} IMMEDIATE")
        cursor.execute(f"SET CONSTRAINTS {names} DEFERRED")


def copy_create_columns(model, columns: dict[str, Any], count: int, *, history: dict[str, Any] | None = None,
                        ids: np.ndarray | None = None) -> np.ndarray:
    """copy_create from columns instead of objects (PostgreSQL): ``columns`` maps field attnames to
    their values in database form (arrow_column input; a model instance or a choice is taken as its
    pk or value); a field not named takes its default, an auto_now one the present moment. The pks
    are drawn from the table's sequence first (or given as ``ids``, drawn by next_ids) and returned.
    With ``history`` (``user``, ``reason``, ``date``) the '+' history rows are written too, from the
    same columns, as copy_create_history writes them. No signals, no save()."""
    if not count:
        return np.empty(0, dtype="int64")
    meta = model._meta
    now = timezone.now()
    ids = next_ids(model, count) if ids is None else ids
    given = _every_field(model, {meta.pk.attname: ids, **columns}, now)
    _copy_fields(model, given, count)
    if history is not None:
        history_model = model.history.model
        tracked = {field.attname for field in history_model.tracked_fields}
        rows = {name: value for name, value in given.items() if name in tracked}
        rows.update(history_date=history["date"], history_change_reason=history["reason"], history_type="+",
                    history_user_id=getattr(history["user"], "pk", None))
        _copy_fields(history_model, _every_field(history_model, rows, now), count)
    return ids


COPY_UPSERT_ROWS = 500


def copy_upsert(model, objs: list, *, unique_fields: Sequence[str], update_fields: Sequence[str]) -> int:
    """bulk_create(update_conflicts=True) through COPY on PostgreSQL: the objects' values (pk left to
    the table's default) COPYed into a temporary table, then one INSERT … SELECT … ON CONFLICT (the
    unique fields) DO UPDATE of `update_fields`. bulk_create elsewhere, and for fewer than
    COPY_UPSERT_ROWS objects (one INSERT … ON CONFLICT, one round trip instead of five: the counter
    upserts one claim at a time). No signals, no save(); returns the number of objects written."""
    if not objs:
        return 0
    if not is_postgres() or len(objs) < COPY_UPSERT_ROWS:
        model.objects.bulk_create(objs, batch_size=2_000, update_conflicts=True, unique_fields=list(unique_fields),
                                  update_fields=list(update_fields))
        return len(objs)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    stamped = [f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    for obj in objs:
        for field in stamped:
            field.pre_save(obj, add=True)
    attnames = [f.attname for f in fields]
    _copy_upsert_rows(model, fields, ([getattr(obj, name) for name in attnames] for obj in objs),
                      unique_fields=unique_fields, update_fields=update_fields)
    return len(objs)


def copy_upsert_columns(model, columns: dict[str, Any], count: int, *, unique_fields: Sequence[str],
                        update_fields: Sequence[str]) -> int:
    """copy_upsert from columns instead of objects (PostgreSQL): ``columns`` maps field attnames to
    their values in database form (arrow_column input, as copy_create_columns takes them); a field
    not named takes its default, an auto_now one the present moment. The rows go into a temporary
    table by copy_columns (Arrow writes the CSV), then one INSERT … SELECT … ON CONFLICT."""
    if not count:
        return 0
    meta = model._meta
    given = _every_field(model, columns, timezone.now())
    given.pop(meta.pk.attname, None)
    fields = [meta.get_field(name) for name in given]
    _upsert_staged(model, fields, lambda staging: copy_columns(staging, {f.column: given[f.attname] for f in fields}, count),
                   unique_fields=unique_fields, update_fields=update_fields)
    return count


def _copy_upsert_rows(model, fields: list, rows: Iterable, *, unique_fields: Sequence[str], update_fields: Sequence[str]) -> None:
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)

    def fill(staging: str) -> None:
        with connection.cursor() as cursor:
            with connection.wrap_database_errors, cursor.connection.cursor() as pg_cursor:  # psycopg errors as Django's
                with pg_cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)

    _upsert_staged(model, fields, fill, unique_fields=unique_fields, update_fields=update_fields)


def _upsert_staged(model, fields: list, fill, *, unique_fields: Sequence[str], update_fields: Sequence[str]) -> None:
    """A temporary table of the model's `fields`, filled by ``fill(its name)``, then INSERTed into the
    model's table in one statement, updating `update_fields` of a row whose `unique_fields` are
    stored already; the temporary table is dropped."""
    meta = model._meta
    quote = connection.ops.quote_name
    staging = "bulk_upsert_rows"
    names = ", ".join(quote(f.column) for f in fields)
    conflict = ", ".join(quote(meta.get_field(name).column) for name in unique_fields)
    updates = ", ".join(f"{quote(meta.get_field(name).column)} = EXCLUDED.{quote(meta.get_field(name).column)}" for name in update_fields)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {staging}")
        cursor.execute(f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS SELECT {names} FROM {quote(meta.db_table)} WITH NO DATA")
        fill(staging)
        cursor.execute(f"INSERT INTO {quote(meta.db_table)} ({names}) SELECT {names} FROM {staging} ON CONFLICT ({conflict}) DO UPDATE SET {updates}")
        cursor.execute(f"DROP TABLE {staging}")


def copy_create_history(model, objs: list, *, user, reason: str, date) -> None:
    """The '+' history rows of newly created objects (as simple_history's bulk_history_create
    builds them), written by COPY on PostgreSQL straight from the objects' values (no history
    instances; history_id from its sequence), bulk_create elsewhere."""
    history = model.history.model
    tracked = [field.attname for field in history.tracked_fields]
    if not objs:
        return
    if not is_postgres():
        rows = [
            history(history_date=date, history_user=user, history_change_reason=reason, history_type="+",
                    **{name: getattr(obj, name) for name in tracked})
            for obj in objs
        ]
        copy_create(history, rows)
        return
    from psycopg.types.json import Jsonb

    meta = history._meta
    fixed = {"history_date": date, "history_change_reason": reason, "history_type": "+",
             "history_user_id": getattr(user, "pk", None)}
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    fixed.update({f.attname: f.get_default() for f in fields if f.attname not in fixed and f.attname not in tracked})
    json_names = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    attnames = [f.attname for f in fields]
    constant = [(i, fixed[name]) for i, name in enumerate(attnames) if name in fixed]
    variable = [(i, name) for i, name in enumerate(attnames) if name not in fixed]
    with connection.cursor() as cursor:
        with connection.wrap_database_errors, cursor.connection.cursor() as pg_cursor:  # psycopg errors as Django's
            with pg_cursor.copy(f"COPY {connection.ops.quote_name(meta.db_table)} ({names}) FROM STDIN") as copy:
                row: list = [None] * len(attnames)
                for index, value in constant:
                    row[index] = value
                for obj in objs:
                    for index, name in variable:
                        value = getattr(obj, name)
                        row[index] = Jsonb(value) if name in json_names and value is not None else value
                    copy.write_row(row)
