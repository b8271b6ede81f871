"""Integer units (fen, ten-thousandths) as exact decimal text, column at a time (pure: numpy,
pandas and pyarrow's compute kernels, no Django): the text of a million amounts in C++, not one
Python string operation per row."""
from __future__ import annotations

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


def units_to_text(values: pd.Series, places: int) -> pd.Series:
    """Integer units -> exact decimal strings ('123.4500'), vectorised; missing -> None; the index is kept."""
    return pd.Series(units_text_array(values, places).to_pylist(), index=values.index, dtype=object)
