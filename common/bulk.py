"""Bulk reads and writes below the ORM: COPY on PostgreSQL (psycopg 3), executemany elsewhere.

Used where a pool's cases or results (up to millions of rows) move between the database and
pandas; the ORM is used for everything else.
"""
from __future__ import annotations

import csv
import io
from typing import Sequence

import pandas as pd
from django.db import connection


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def read_frame(sql: str, params: Sequence, columns: Sequence[str], dtypes: dict | None = None) -> pd.DataFrame:
    """Run a SELECT and return its rows as a DataFrame (PostgreSQL: COPY ... TO STDOUT, CSV)."""
    if is_postgres():
        with connection.cursor() as cursor:
            raw = cursor.connection  # the psycopg Connection
            with raw.cursor() as pg_cursor:
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


def write_frame(table: str, frame: pd.DataFrame, columns: Sequence[str]) -> int:
    """Insert a DataFrame's columns (already in database text/number form) into `table`."""
    if frame.empty:
        return 0
    cols = list(columns)
    quoted = ", ".join(connection.ops.quote_name(c) for c in cols)
    if is_postgres():
        buffer = io.StringIO()
        frame[cols].to_csv(buffer, header=False, index=False, quoting=csv.QUOTE_MINIMAL, na_rep="")
        with connection.cursor() as cursor:
            with cursor.connection.cursor() as pg_cursor:
                with pg_cursor.copy(f"COPY {connection.ops.quote_name(table)} ({quoted}) FROM STDIN WITH (FORMAT csv)") as copy:
                    copy.write(buffer.getvalue())
        return len(frame)
    placeholders = ", ".join(["%s"] * len(cols))
    sql = f"INSERT INTO {connection.ops.quote_name(table)} ({quoted}) VALUES ({placeholders})"
    records = frame[cols].astype(object).where(frame[cols].notna(), None).itertuples(index=False, name=None)
    with connection.cursor() as cursor:
        batch: list = []
        for record in records:
            batch.append(record)
            if len(batch) >= 50_000:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
    return len(frame)


def units_to_text(values: pd.Series, places: int) -> pd.Series:
    """Integer units (fen, ten-thousandths) -> exact decimal strings ('123.4500'), vectorised."""
    ints = values.astype("int64")
    scale = 10**places
    sign = pd.Series(ints < 0).map({True: "-", False: ""}).to_numpy()
    magnitude = ints.abs()
    whole = (magnitude // scale).astype(str).to_numpy()
    frac = (magnitude % scale).astype(str).str.zfill(places).to_numpy()
    return pd.Series(sign + whole + "." + frac, index=values.index, dtype=object)
