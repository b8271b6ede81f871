"""Integer units (fen, ten-thousandths) as exact decimal text or Arrow decimals, column at a time
(pure: numpy, pandas and pyarrow's compute kernels, no Django): a million amounts in C++, not one
Python string operation per row."""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def units_text_array(values, places: int) -> pa.Array:
    """'123.4500' for 1234500 at 4 places ('-0.05' for -5 at 2), as an Arrow string array; a missing
    value (None, NaN, pd.NA) stays missing (null)."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    missing = series.isna().to_numpy()
    if missing.any():
        return pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), units_text_array(series.fillna(0), places))
    ints = series.to_numpy(dtype="int64")
    scale = 10**places
    magnitude = np.abs(ints)
    whole = pc.cast(pa.array(magnitude // scale), pa.string())
    fraction = pc.utf8_lpad(pc.cast(pa.array(magnitude % scale), pa.string()), width=places, padding="0")
    sign = pc.if_else(pa.array(ints < 0), "-", "")
    return pc.binary_join_element_wise(sign, whole, ".", fraction, "")


def units_decimal_array(values, places: int, precision: int = 18) -> pa.Array:
    """Integer units as an Arrow decimal128(precision, places) array: 1234500 at 4 places is
    123.4500. The units are the decimal's unscaled integer, so its 16-byte words are written from
    them directly (low word the units, high word their sign), nothing formatted or parsed: a million
    amounts in milliseconds instead of a fifth of a second as text. A missing value stays missing;
    ValueError for a value of more than ``precision`` digits."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    missing = series.isna().to_numpy()
    ints = (series.fillna(0) if missing.any() else series).to_numpy(dtype="int64")
    if not 0 < precision <= 18:
        raise ValueError(f"precision {precision}: at most 18 digits fit the units' int64")
    bound = 10**precision
    if len(ints) and (int(ints.max()) >= bound or int(ints.min()) <= -bound):
        raise ValueError(f"a value of more than {precision} digits")
    if sys.byteorder != "little":  # Arrow's words are little-endian: there, by the exact text
        return pc.cast(units_text_array(series, places), pa.decimal128(precision, places))
    words = np.empty((len(ints), 2), dtype=np.int64)
    words[:, 0] = ints
    words[:, 1] = ints >> 63  # two's complement: all ones below zero
    validity = pa.array(~missing).buffers()[1] if missing.any() else None
    return pa.Array.from_buffers(pa.decimal128(precision, places), len(ints), [validity, pa.py_buffer(words)],
                                 null_count=int(missing.sum()))


def units_to_text(values: pd.Series, places: int) -> pd.Series:
    """Integer units -> exact decimal strings ('123.4500'), vectorised; missing -> None; the index is kept."""
    return pd.Series(units_text_array(values, places).to_pylist(), index=values.index, dtype=object)
