"""A run's per-case results as compressed columnar blocks (docs/storage.md).

A clearing run values every case of its pool; the twelve cumulative monthly runs and the annual run
of a year value the same cases again and again. Stored as one database row per case and run they
cost ≈ 150 bytes a result with their indexes; stored as one Parquet block per (run, institution),
zstd-compressed with dictionary and delta encodings, they cost ≈ 10–12 bytes and are written and
read in one piece (an institution's statement, a hospital's case list, the clearing files read whole
blocks anyway).

Points, coefficients and ratios are held as integer units (ten-thousandths), exactly as the
valuation engine computes them; `as_decimals` turns them into the Decimals the screens and files
show. Pure: pandas and pyarrow only.
"""
from __future__ import annotations

import io
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# the stored columns of a block, in order (run and institution are the block's own keys)
BLOCK_COLUMNS = (
    "case_id", "valuation_group", "coefficient", "ratio", "category", "base_points",
    "readmission_halved", "points_before_readmission", "points",
)
# integer-unit columns and their decimal places
UNIT_COLUMNS = {"coefficient": 4, "ratio": 4, "base_points": 4, "points_before_readmission": 4, "points": 4}
NULLABLE = ("ratio", "base_points")

SCHEMA = pa.schema([
    ("case_id", pa.int64()),
    ("valuation_group", pa.string()),
    ("coefficient", pa.int64()),
    ("ratio", pa.int64()),
    ("category", pa.string()),
    ("base_points", pa.int64()),
    ("readmission_halved", pa.bool_()),
    ("points_before_readmission", pa.int64()),
    ("points", pa.int64()),
])
# repeated values (group codes, categories, catalog points) are dictionary-encoded; the sorted case
# ids are delta-encoded; zstd over all of it
_DICTIONARY = ["valuation_group", "coefficient", "category", "base_points", "points_before_readmission", "points"]
FORMAT_VERSION = 1


class BlockError(ValueError):
    """A block does not hold what a case-result block must hold."""


def empty_frame() -> pd.DataFrame:
    """A frame of BLOCK_COLUMNS with no rows, typed as decode_block returns them."""
    return _typed(pd.DataFrame({name: [] for name in BLOCK_COLUMNS}))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "case_id": frame["case_id"].astype("int64"),
        "valuation_group": frame["valuation_group"].astype(object),
        "coefficient": frame["coefficient"].astype("int64"),
        "ratio": pd.array(frame["ratio"], dtype="Int64"),
        "category": frame["category"].astype(object),
        "base_points": pd.array(frame["base_points"], dtype="Int64"),
        "readmission_halved": frame["readmission_halved"].astype(bool),
        "points_before_readmission": frame["points_before_readmission"].astype("int64"),
        "points": frame["points"].astype("int64"),
    })
    return out


def encode_block(frame: pd.DataFrame) -> bytes:
    """One block's rows (BLOCK_COLUMNS, integer units, NA for NULL) -> Parquet bytes, rows in case id order."""
    if frame.empty:
        return _write(pa.Table.from_pandas(_typed(frame[list(BLOCK_COLUMNS)]), schema=SCHEMA, preserve_index=False))
    ((_, _, data),) = encode_blocks(frame.assign(_block=0), institution="_block")
    return data


def encode_blocks(frame: pd.DataFrame, institution: str = "institution_id") -> list[tuple[int, int, bytes]]:
    """A run's (or a chunk's) results with an institution column -> [(institution id, cases, block)],
    institutions in id order; one Arrow table for all of them, sliced per institution."""
    if frame.empty:
        return []
    missing = [name for name in BLOCK_COLUMNS if name not in frame.columns]
    if missing:
        raise BlockError(f"case results lack the columns {missing}")
    order = np.lexsort((frame["case_id"].to_numpy(np.int64), frame[institution].to_numpy(np.int64)))
    institutions = frame[institution].to_numpy(np.int64)[order]
    case_ids = frame["case_id"].to_numpy(np.int64)[order]
    same = (institutions[1:] == institutions[:-1]) & (case_ids[1:] == case_ids[:-1])
    if same.any():
        raise BlockError("a case is valued twice in one block")
    table = pa.Table.from_arrays([_arrow(frame[name], field.type, order) for name, field in zip(BLOCK_COLUMNS, SCHEMA)], schema=SCHEMA)
    table = table.replace_schema_metadata({"drg.case_results": str(FORMAT_VERSION)})
    cuts = np.flatnonzero(institutions[1:] != institutions[:-1]) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, len(institutions)]
    return [(int(institutions[a]), int(b - a), _write(table.slice(a, b - a))) for a, b in zip(starts.tolist(), ends.tolist())]


def _arrow(column: pd.Series, kind: pa.DataType, order: np.ndarray) -> pa.Array:
    """One column, rows taken in `order`, as an Arrow array of `kind` (NA -> null)."""
    if pa.types.is_string(kind):
        return pa.array(column.to_numpy(object)[order], type=kind)
    if pa.types.is_boolean(kind):
        return pa.array(column.to_numpy(bool)[order], type=kind)
    mask = column.isna().to_numpy()
    if mask.any():
        return pa.array(column.fillna(0).to_numpy(np.int64)[order], type=kind, mask=mask[order])
    return pa.array(column.to_numpy(np.int64)[order], type=kind)


def _write(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(
        table, buffer, compression="zstd", compression_level=3, use_dictionary=_DICTIONARY,
        column_encoding={"case_id": "DELTA_BINARY_PACKED"}, write_statistics=False, store_schema=False,
    )
    return buffer.getvalue()


def decode_block(data: bytes | memoryview) -> pd.DataFrame:
    """Parquet bytes of encode_block -> the frame (integer units; Int64 with NA for NULL)."""
    try:
        table = pq.read_table(pa.BufferReader(bytes(data)))
    except (pa.ArrowException, OSError) as exc:
        raise BlockError(f"unreadable case-result block: {exc}") from exc
    if table.schema.names != list(BLOCK_COLUMNS):
        raise BlockError(f"case-result block has the columns {table.schema.names}")
    return _typed(table.to_pandas())


def units_to_decimals(values: pd.Series, places: int) -> list[Decimal | None]:
    """Integer units -> exact Decimals (None where NA)."""
    mask = values.isna().to_numpy()
    ints = values.fillna(0).astype("int64").tolist() if mask.any() else values.astype("int64").tolist()
    out = [Decimal(v).scaleb(-places) for v in ints]
    if mask.any():
        for position in np.flatnonzero(mask).tolist():
            out[position] = None
    return out


def as_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts, None for every missing value (NA, NaN)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def as_decimals(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame with integer-unit columns -> the same with exact Decimal columns (None for NULL)."""
    out = frame.copy()
    for name, places in UNIT_COLUMNS.items():
        if name in out.columns:
            out[name] = pd.Series(units_to_decimals(out[name], places), index=out.index, dtype=object)
    return out
