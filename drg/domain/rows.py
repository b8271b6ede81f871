"""Typed rows from CSV text, checked column by column. Pure: stdlib, decimal, numpy, pandas.

The machinery every exchange file and the hospital API's case rows are read with: ``RowError(file,
line, column, reason)``, ``FileSpec`` (a file's columns and key), ``read_csv_text`` /
``read_csv_file`` (UTF-8, a BOM tolerated, every value a string, no NA guessing) and ``_Rows``, the
vectorised column checks (text, enum, boolean, integer, exact decimal, ISO date and month, known
references, duplicate keys). ``line`` is the CSV line number (the header is line 1, the first record
line 2; a record whose quoted value spans lines counts as one line).

Typed frames: a parse function returns its rows with the values converted exactly, plus ``_line``:
- a decimal column becomes integer units, never float: money ``<name>_fen`` (0.01 yuan), points,
  coefficients and multiples ``<name>_u`` (0.0001), the evaluation score ``score_c`` (0.01);
  nullable ones use pandas ``Int64``;
- dates stay ISO strings ``YYYY-MM-DD`` (they compare correctly as strings); a month ``YYYY-MM``
  becomes the ISO string of its first day;
- booleans (``1``/``0``/empty = 0) become bool, small integers int64.

The file-level rules of the exchange bundle (which files, params.json, load order) live in
exchange/domain/bundle.py; the case rules in drg/domain/cases.py; the payment scheme's in
drg/domain/scheme.py.
"""
from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from common.text import IDENTIFIER_PATTERN, identifier_problem, printable

LINE = "_line"

# The choices of drg.choices / settlement / incentives, restated here because the domain layer may
# not import Django; tests/unit/test_bundle_parse.py asserts they stay equal.
FUNDS = ("employee", "resident")
INSTITUTION_CATEGORIES = ("general", "tcm", "specialist", "primary")
GROUP_KINDS = ("stable", "unstable", "per_diem")
DISCHARGE_STATUSES = ("normal", "transfer", "against_advice", "death")
HOSPICE_KINDS = ("bed", "inpatient", "home")

# Field sizes of the models (max length of text, digits before the decimal point).
MONEY_INT_DIGITS = 14  # DecimalField(max_digits=16, decimal_places=2)
POINTS_INT_DIGITS = 10  # DecimalField(max_digits=14, decimal_places=4)
FACTOR_INT_DIGITS = 4  # coefficient / multiple: DecimalField(max_digits=8, decimal_places=4)
RATE_PLACES = 6  # RATE: DecimalField(max_digits=9, decimal_places=6)
RATE_INT_DIGITS = 3


@dataclass(frozen=True, order=True)
class RowError:
    """One problem of a bundle: file, CSV line (header = 1; 0 = the whole file / params.json), column
    (or JSON path), and why."""

    file: str
    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.column}: {self.reason}" if self.column else f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class FileSpec:
    """One CSV file of the bundle: its columns (optional ones may be left out of the header: their
    values are then empty), whether the file itself must be present, and its key within the file."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    required: bool = False
    optional_columns: frozenset[str] = frozenset()

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.optional_columns)



# --- reading -----------------------------------------------------------------------------------------


def _empty_frame(columns: Iterable[str]) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=str) for c in columns})
    frame[LINE] = pd.Series(dtype="int64")
    return frame


def check_header(columns: Iterable[str], spec: FileSpec) -> list[RowError]:
    """Unknown, duplicate and missing required columns (line 1, the header)."""
    columns = list(columns)
    errors: list[RowError] = []
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            errors.append(RowError(spec.name, 1, name, "duplicate column"))
        elif name not in spec.columns:
            errors.append(RowError(spec.name, 1, name, f"unknown column (expected: {', '.join(spec.columns)})"))
        seen.add(name)
    for name in spec.required_columns:
        if name not in seen:
            errors.append(RowError(spec.name, 1, name, "missing required column"))
    return errors


class _Unreadable(Exception):
    """A record the csv module cannot read (a carriage return alone inside an unquoted field)."""

    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line, self.reason = line, reason


def _csv_records(text: str) -> list[list[str]]:
    """Every record of the text by the csv module; _Unreadable names the line it stopped at."""
    reader = csv.reader(io.StringIO(text))
    try:
        return list(reader)
    except csv.Error as error:
        reason = ("a carriage return (CR) alone inside a record: lines end with LF or CRLF"
                  if "new-line character" in str(error) else f"not readable as CSV: {error}")
        raise _Unreadable(reader.line_num, reason) from None


def _field_counts(text: str, encoded: bytes | memoryview) -> tuple[np.ndarray, list[list[str]] | None]:
    """Number of fields of every record after the header (0 for a blank line). Without quotes in the
    file, records are lines and commas count the fields (vectorised over the bytes); otherwise the
    csv module parses the records (returned too, so the caller can build the frame from them)."""
    if '"' not in text:
        data = np.frombuffer(encoded, dtype=np.uint8)
        newlines = np.flatnonzero(data == 10)
        starts = np.concatenate(([0], newlines + 1))
        ends = np.concatenate((newlines, [len(data)]))
        if starts[-1] == len(data):  # the newline that ends the last record
            starts, ends = starts[:-1], ends[:-1]
        # commas before each record's end, less those before the previous one's (records are contiguous)
        counts = np.diff(np.searchsorted(np.flatnonzero(data == 44), ends), prepend=0).astype("int64") + 1
        length = ends - starts
        carriage = np.zeros(len(starts), dtype=bool)
        carriage[length > 0] = data[ends[length > 0] - 1] == 13
        counts[(length - carriage) == 0] = 0
        return counts[1:], None
    records = _csv_records(text)[1:]
    return np.array([len(r) for r in records], dtype="int64"), records


def read_csv_text(text: str, spec: FileSpec, *, encoded: bytes | None = None) -> tuple[pd.DataFrame, list[RowError]]:
    """Parse one CSV file's text into a frame of strings (one column per header name, plus _line).
    Blank lines are skipped; a record with the wrong number of fields is an error and left out.
    ``encoded``: the text's UTF-8 bytes, when the caller has them (no second copy of a large file).
    The usual file is read from those bytes by Arrow (_read_usual), any other by _read_decoded."""
    raw = encoded if encoded is not None else text.encode("utf-8")
    usual = _read_usual(raw, spec)
    if usual is not None:
        return usual
    return _read_decoded(text, raw, spec)


def _read_decoded(text: str, raw: bytes, spec: FileSpec) -> tuple[pd.DataFrame, list[RowError]]:
    """read_csv_text of a file that is not the usual one (_read_usual), its text and UTF-8 bytes given."""
    data = memoryview(raw)
    if text.startswith("\ufeff"):
        text, data = text[1:], data[len(_BOM):]
    try:
        return _read_records(text, data, spec)
    except _Unreadable as problem:
        return _empty_frame(spec.columns), [RowError(spec.name, problem.line, "", problem.reason)]


def _read_records(text: str, data: memoryview, spec: FileSpec) -> tuple[pd.DataFrame, list[RowError]]:
    first_end = text.find("\n")
    header_rows = _csv_records(text if first_end < 0 else text[:first_end])  # not split: that copies the rest
    if not header_rows or not any(h.strip() for h in header_rows[0]):
        return _empty_frame(spec.columns), [RowError(spec.name, 1, "", "empty file: no header row")]
    header = header_rows[0]
    errors = check_header(header, spec)
    if len(set(header)) != len(header):
        return _empty_frame(spec.columns), errors
    counts, records = _field_counts(text, data)
    wrong = (counts != len(header)) & (counts != 0)
    for position in np.flatnonzero(wrong):
        errors.append(RowError(spec.name, int(position) + 2, "", f"expected {len(header)} fields, found {int(counts[position])}"))
    frame = None
    if records is None and not wrong.any():
        frame = _read_plain(text, header, data)
        records_at = np.flatnonzero(counts != 0)
        if frame is not None and len(frame) == len(records_at):
            frame[LINE] = records_at.astype("int64") + 2
        else:  # defensive: numbering must follow the records exactly
            frame = None
    if frame is None:
        if records is None:
            records = _csv_records(text)[1:]
        keep = [i for i, r in enumerate(records) if len(r) == len(header)]
        frame = pd.DataFrame([records[i] for i in keep], columns=header, dtype=str) if keep else pd.DataFrame(
            {c: pd.Series(dtype=str) for c in header}
        )
        frame[LINE] = np.array(keep, dtype="int64") + 2
    return frame.reset_index(drop=True), errors


def _read_plain(text: str, header: list[str], data: bytes | memoryview) -> pd.DataFrame | None:
    """A CSV text without quotes whose every record has the header's fields, read by Arrow's CSV
    reader (C++, on every core) into text columns of pandas' Arrow-backed ``str`` dtype, blank lines
    left out; None where it would read the lines otherwise than _field_counts counted them (a
    carriage return alone ends a line for it), so the caller reads the text with the csv module
    instead. ``data`` is the text's UTF-8 bytes."""
    carriage_returns = text.count("\r") if "\r" in text else 0  # the search stops at the first: usually none
    if carriage_returns and carriage_returns != text.count("\r\n"):
        return None
    return _arrow_frame(data, header)


def _arrow_frame(data: bytes | memoryview, header: list[str]) -> pd.DataFrame | None:
    """_read_plain's reading by Arrow of a CSV's UTF-8 bytes (its header first) without quotes nor a
    carriage return alone: None when Arrow refuses it (a record with other fields than the header's,
    bytes that are not UTF-8 in a value) or names its columns otherwise than ``header``."""
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(pa.py_buffer(data)),
            read_options=pa_csv.ReadOptions(block_size=_ARROW_BLOCK),
            parse_options=pa_csv.ParseOptions(quote_char=False, double_quote=False, escape_char=False,
                                               newlines_in_values=False, ignore_empty_lines=True),
            convert_options=pa_csv.ConvertOptions(column_types={name: pa.large_string() for name in header}, check_utf8=True,
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowException, UnicodeError):
        return None
    if table.column_names != header:
        return None
    return table.to_pandas(types_mapper=_TEXT_TYPES.get, split_blocks=True, self_destruct=True)


_ARROW_BLOCK = 4 << 20  # bytes of CSV per parsed block (Arrow's default is 1 MiB)
_TEXT_TYPES = {pa.large_string(): pd.StringDtype("pyarrow", na_value=np.nan), pa.string(): pd.StringDtype("pyarrow", na_value=np.nan)}


def read_csv_file(path: Path, spec: FileSpec) -> tuple[pd.DataFrame, list[RowError]]:
    return read_csv_bytes(Path(path).read_bytes(), spec)


def read_csv_bytes(raw: bytes, spec: FileSpec) -> tuple[pd.DataFrame, list[RowError]]:
    """read_csv_text of a file's bytes; bytes that are not UTF-8 are one error naming their line.
    The usual file is read from its bytes as they are (_read_usual), any other decoded first."""
    usual = _read_usual(raw, spec)
    if usual is not None:
        return usual
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return _empty_frame(spec.columns), [RowError(spec.name, line, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
    return _read_decoded(text, raw, spec)


_BOM = "\ufeff".encode("utf-8")


def _read_usual(raw: bytes, spec: FileSpec) -> tuple[pd.DataFrame, list[RowError]] | None:
    """read_csv_text's result for the usual file, read from its UTF-8 bytes: a header line without a repeated
    name, no quote anywhere, no carriage return but before a line feed, and every record read by
    Arrow with the header's fields (Arrow checks that each value is UTF-8; the header is decoded
    here). None for any other file, which the caller decodes and reads as text: its errors are
    named there. A file of a million cases (100 MB) is then neither decoded into a text copy of
    itself nor searched as text (≈ 0.15 s). A blank line, which Arrow leaves out, shows as fewer
    records than lines, and the file is read as text, which numbers the records around it."""
    start = len(_BOM) if raw.startswith(_BOM) else 0
    first_end = raw.find(b"\n", start)
    if first_end < 0 or b'"' in raw:
        return None
    try:
        header_rows = _csv_records(raw[start:first_end].decode("utf-8"))
    except (UnicodeDecodeError, _Unreadable):
        return None
    if not header_rows or not any(h.strip() for h in header_rows[0]) or len(set(header_rows[0])) != len(header_rows[0]):
        return None
    header = header_rows[0]
    carriage_returns = raw.count(b"\r") if b"\r" in raw else 0  # the search stops at the first: usually none
    if carriage_returns and carriage_returns != raw.count(b"\r\n"):
        return None
    frame = _arrow_frame(memoryview(raw)[start:], header)
    records = raw.count(b"\n") - (1 if raw.endswith(b"\n") else 0)
    if frame is None or len(frame) != records:
        return None
    frame[LINE] = np.arange(2, records + 2, dtype="int64")
    return frame, check_header(header, spec)


@dataclass(frozen=True)
class PlainLines:
    """A CSV file without quotes or carriage returns, split into its records: then a record is a
    line and a field is what lies between commas, for every CSV reader."""

    header: str
    lines: list[bytes]  # the records after the header, in order (line number = position + 2)


def plain_lines(raw: bytes) -> PlainLines | None:
    """Split a file that any CSV reader splits the same way (see PlainLines); None otherwise (quotes,
    carriage returns, a header that is not UTF-8)."""
    if b'"' in raw or b"\r" in raw:
        return None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last record
    if not lines:
        return None
    try:
        header = lines[0].decode("utf-8")
    except UnicodeDecodeError:
        return None
    del lines[0]
    return PlainLines(header=header, lines=lines)


@dataclass(frozen=True)
class LineSample:
    keys: list[tuple[str, str]]  # (institution_code, case_no)
    years: tuple[int, int] | None  # the first and last discharge year read, None when none reads as a date


def line_sample(plain: PlainLines, header: list[str], *, rows: int) -> LineSample:
    """The keys and discharge years of about `rows` case lines spread evenly over the file (lines with
    the header's number of fields and UTF-8 keys only)."""
    at_code, at_number, at_discharge = (header.index(name) for name in ("institution_code", "case_no", "discharge_date"))
    keys, years = [], []
    for line in plain.lines[:: max(1, len(plain.lines) // rows)]:
        fields = line.split(b",")
        if len(fields) != len(header):
            continue
        try:
            keys.append((fields[at_code].decode("utf-8"), fields[at_number].decode("utf-8")))
        except UnicodeDecodeError:
            continue
        year = fields[at_discharge][:4]
        if len(year) == 4 and year.isdigit():
            years.append(int(year))
    return LineSample(keys=keys, years=(min(years), max(years)) if years else None)


def read_lines(plain: PlainLines, positions: np.ndarray, spec: FileSpec) -> tuple[pd.DataFrame, list[RowError]] | None:
    """read_csv_text of some of a file's records (their positions in ``plain.lines``), numbered as
    in the whole file; blank lines are skipped as there. None when those records are not UTF-8 (the
    whole file's reading names the line)."""
    positions = np.asarray(positions, dtype="int64")
    kept = positions[[len(plain.lines[p]) > 0 for p in positions]] if len(positions) else positions
    try:
        body = b"\n".join(plain.lines[p] for p in kept).decode("utf-8")
    except UnicodeDecodeError:
        return None
    frame, errors = read_csv_text(plain.header + "\n" + body + ("\n" if len(kept) else ""), spec)
    numbers = kept + 2  # the line number of the subset's record i is numbers[i]
    frame[LINE] = numbers[frame[LINE].to_numpy(dtype="int64") - 2] if len(frame) else frame[LINE]
    errors = [replace(e, line=int(numbers[e.line - 2])) if e.line >= 2 else e for e in errors]
    return frame, errors


# --- column checks -----------------------------------------------------------------------------------


class _Rows:
    """The rows of one file being checked: collects errors, knows which cells are valid."""

    def __init__(self, frame: pd.DataFrame, spec: FileSpec):
        frame = frame.copy()
        if LINE not in frame.columns:
            frame[LINE] = np.arange(2, len(frame) + 2, dtype="int64")
        for name in spec.columns:
            if name not in frame.columns:
                frame[name] = ""
            elif frame[name].dtype != "str":
                frame[name] = frame[name].astype(object).where(frame[name].notna(), "").astype(str)
        self.frame = frame.reset_index(drop=True)
        self.spec = spec
        self.lines = self.frame[LINE].to_numpy(dtype="int64")
        self.errors: list[RowError] = []
        self.out = pd.DataFrame({LINE: self.lines})
        self._arrow: dict[str, pa.Array | None] = {}

    def arrow(self, column: str) -> pa.Array | pa.ChunkedArray | None:
        """The column as an Arrow string array (for C++ string kernels), or None when some value is
        not Unicode text Arrow can hold (a lone surrogate from JSON): the Python paths then decide."""
        if column not in self._arrow:
            self._arrow[column] = _arrow_text(self.raw(column))
        return self._arrow[column]

    def __len__(self) -> int:
        return len(self.frame)

    def raw(self, column: str) -> pd.Series:
        return self.frame[column]

    def flag(self, mask, column: str, reason: str | Callable[[int], str]) -> None:
        """Add an error for every row where mask is true; reason may be a function of the row position."""
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        for position in positions:
            text = reason(int(position)) if callable(reason) else reason
            self.errors.append(RowError(self.spec.name, int(self.lines[position]), column, text))

    def value(self, column: str, position: int) -> str:
        return self.frame[column].iat[position]

    # typed columns -------------------------------------------------------------------------------

    def text(self, column: str, *, max_length: int, required: bool = True) -> np.ndarray:
        """A text value; returns the validity mask (non-empty when required, not too long)."""
        values = self.raw(column)
        arrow = self.arrow(column)
        lengths = pc.utf8_length(arrow).to_numpy() if arrow is not None else values.str.len().to_numpy()
        empty = lengths == 0
        too_long = lengths > max_length
        if required:
            self.flag(empty, column, "required value is empty")
        self.flag(too_long, column, f"longer than {max_length} characters")
        self.out[column] = values.array
        return ~too_long & (~empty if required else True)

    def identifier(self, column: str, *, max_length: int, required: bool = True) -> np.ndarray:
        """An identifier as HIS systems issue them (case_no, claim_no, patient_id, institution code):
        a text (see ``text``) of letters, digits and ``-_./`` that starts with a letter or digit, so
        no whitespace-only value, control character or formula lead (``=+-@``) gets in
        (common.text.identifier_problem names why). Returns the validity mask."""
        valid = self.text(column, max_length=max_length, required=required)
        values = self.raw(column)
        arrow = self.arrow(column)
        if arrow is None:
            bad = ~values.str.fullmatch(IDENTIFIER_PATTERN).to_numpy(dtype=bool) & (values != "").to_numpy()
        else:
            # an ASCII identifier is one by Arrow's (RE2) test, in C++; the few others are decided by
            # IDENTIFIER_PATTERN (re: Unicode letters and digits)
            ascii_ok = pc.match_substring_regex(arrow, _ASCII_IDENTIFIER).to_numpy(zero_copy_only=False)
            bad = ~ascii_ok & pc.not_equal(arrow, "").to_numpy(zero_copy_only=False)
            doubtful = np.flatnonzero(bad)
            if len(doubtful):
                bad[doubtful] = ~values.iloc[doubtful].str.fullmatch(IDENTIFIER_PATTERN).to_numpy(dtype=bool)
        self.flag(bad, column, lambda p: f"{column} '{printable(self.value(column, p))}' {identifier_problem(self.value(column, p))}")
        return valid & ~bad

    def enum(self, column: str, choices: tuple[str, ...]) -> np.ndarray:
        values = self.raw(column)
        empty = (values == "").to_numpy()
        bad = ~values.isin(choices).to_numpy() & ~empty
        self.flag(empty, column, f"required value is empty (one of {', '.join(choices)})")
        self.flag(bad, column, lambda p: f"{self.value(column, p)!r} is not one of {', '.join(choices)}")
        self.out[column] = values.array
        return ~bad & ~empty

    def boolean(self, column: str) -> np.ndarray:
        values = self.raw(column)
        bad = ~values.isin(("1", "0", "")).to_numpy()
        self.flag(bad, column, lambda p: f"{self.value(column, p)!r} is not a boolean (1, 0 or empty)")
        self.out[column] = (values == "1").to_numpy()
        return ~bad

    def integer(self, column: str, *, low: int, high: int, default: int | None = None) -> np.ndarray:
        values = self.raw(column)
        empty = (values == "").to_numpy()
        numbers, digits = self._units(column, places=0, int_digits=9)
        out_of_range = digits & ((numbers < low) | (numbers > high))
        if default is None:
            self.flag(empty, column, "required value is empty")
        else:
            numbers[empty] = default
        self.flag(~digits & ~empty, column, lambda p: f"{self.value(column, p)!r} is not a whole number")
        self.flag(out_of_range, column, lambda p: f"{self.value(column, p)} is outside {low}–{high}")
        self.out[column] = numbers
        valid = digits & ~out_of_range
        return (valid | empty) if default is not None else valid

    def _units(self, column: str, *, places: int, int_digits: int) -> tuple[np.ndarray, np.ndarray]:
        """Unsigned decimals -> (int64 units of 10**-places, ok): by Arrow's kernels in C++, or by
        the numpy reading where the column is not Arrow text; both decide alike (test_row_kernels)."""
        arrow = self.arrow(column)
        if arrow is None:
            units, ok = _chunked(_decimal_units, self.raw(column), places=places, int_digits=int_digits)
            nul = self._nul(column)
            return np.where(nul, 0, units), ok & ~nul
        return _decimal_units_arrow(arrow, places=places, int_digits=int_digits)

    def _nul(self, column: str) -> np.ndarray:
        """Values holding a NUL character, which the fixed-width numpy readings (_chars) would drop
        from the end of a value unseen."""
        arrow = self.arrow(column)
        if arrow is not None:
            return pc.fill_null(pc.match_substring(arrow, "\x00"), False).to_numpy(zero_copy_only=False)
        return self.raw(column).str.contains("\x00", regex=False).to_numpy(dtype=bool)

    def decimal(
        self, column: str, *, places: int, int_digits: int, out: str, what: str,
        required: bool = True, default: int | None = None, positive: bool = False, maximum: int | None = None,
    ) -> np.ndarray:
        """An unsigned decimal with at most `places` decimals -> integer units in column `out`
        (Int64, <NA> where empty and not required). Returns the validity mask (empty counts as
        valid when not required)."""
        values = self.raw(column)
        empty = (values == "").to_numpy()
        units, good = self._units(column, places=places, int_digits=int_digits)
        bad = ~good & ~empty
        if bad.any():  # say why, row by row (only the bad rows)
            bad_values = values[bad]
            negative = np.zeros(len(values), dtype=bool)
            too_fine = np.zeros(len(values), dtype=bool)
            too_big = np.zeros(len(values), dtype=bool)
            shape = bad_values.str.fullmatch(r"\d+(?:\.\d+)?").to_numpy(dtype=bool)
            negative[bad] = bad_values.str.fullmatch(r"-\s*\d+(?:\.\d+)?").to_numpy(dtype=bool)
            too_fine[bad] = shape & bad_values.str.fullmatch(rf"\d+\.\d{{{places + 1},}}").to_numpy(dtype=bool)
            too_big[bad] = shape
            too_big &= ~too_fine
            self.flag(negative, column, lambda p: f"negative {what}: {self.value(column, p)!r}")
            self.flag(too_fine, column, lambda p: f"{self.value(column, p)!r} has more than {places} decimals")
            self.flag(too_big, column, lambda p: f"{self.value(column, p)!r} is too large (at most {int_digits} digits before the point)")
            self.flag(bad & ~negative & ~too_fine & ~too_big, column,
                      lambda p: f"{self.value(column, p)!r} is not {'an' if what[0] in 'aeiou' else 'a'} {what} (digits with at most {places} decimals)")
        valid = good.copy()
        if positive:
            zero = good & (units == 0)
            self.flag(zero, column, f"{what} must be greater than 0")
            valid &= ~zero
        if maximum is not None:
            over = good & (units > maximum)
            self.flag(over, column, lambda p: f"{self.value(column, p)} is above the maximum {maximum / 10 ** places:g}")
            valid &= ~over
        if required and default is None:
            self.flag(empty, column, "required value is empty")
            self.out[out] = units
            return valid
        if default is not None:
            units = units.copy()
            units[empty] = default
            self.out[out] = units
        else:
            result = pd.array(units, dtype="Int64")
            result[empty] = pd.NA
            self.out[out] = result
        return valid | empty

    def date(self, column: str) -> np.ndarray:
        values = self.raw(column)
        empty = (values == "").to_numpy()
        arrow = self.arrow(column)
        if arrow is not None:
            shape, calendar = _iso_dates_arrow(arrow)
        else:
            shape, calendar = _chunked(_iso_dates, values)
            nul = self._nul(column)
            shape, calendar = shape & ~nul, calendar & ~nul
        self.flag(empty, column, "required value is empty")
        self.flag(~shape & ~empty, column, lambda p: f"{self.value(column, p)!r} is not a date YYYY-MM-DD")
        self.flag(shape & ~calendar, column, lambda p: f"{self.value(column, p)} is not a calendar date")
        self.out[column] = values.array
        return calendar

    def month(self, column: str) -> np.ndarray:
        """A month YYYY-MM -> the ISO date of its first day."""
        values = self.raw(column)
        empty = (values == "").to_numpy()
        arrow = self.arrow(column)
        if arrow is not None:
            shape = _iso_months_arrow(arrow)
        else:
            (shape,) = _chunked(_iso_months, values)
            shape = shape & ~self._nul(column)
        self.flag(empty, column, "required value is empty")
        self.flag(~shape & ~empty, column, lambda p: f"{self.value(column, p)!r} is not a month YYYY-MM")
        self.out[column] = (values + "-01").array
        return shape

    def known(self, column: str, valid: np.ndarray, known: set[str] | frozenset[str], what: str) -> np.ndarray:
        values = self.raw(column)
        unknown = valid & ~values.isin(list(known)).to_numpy()
        self.flag(unknown, column, lambda p: f"unknown {what} {self.value(column, p)!r}")
        return valid & ~unknown

    def duplicates(self) -> np.ndarray:
        """Every record whose key repeats an earlier record of the file."""
        key = list(self.spec.key)
        frame = self.frame[key + [LINE]]
        dup = frame.duplicated(subset=key, keep="first").to_numpy()
        if dup.any():
            first_line = frame.groupby(key, sort=False)[LINE].transform("first").to_numpy()
            label = ", ".join(key)

            def reason(p: int) -> str:
                values = ", ".join(repr(self.value(k, p)) for k in key)
                return f"duplicate key ({label}) = ({values}); first at line {int(first_line[p])}"

            self.flag(dup, key[-1], reason)
        return ~dup

    def result(self) -> tuple[pd.DataFrame, list[RowError]]:
        return self.out, self.errors


# IDENTIFIER_PATTERN for ASCII text: [^\W_] and \w of Python's re agree with these classes there
_ASCII_IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_\-./]*$"
CHUNK_ROWS = 250_000  # bounds the character matrices' memory


def _arrow_text(values: pd.Series) -> pa.Array | pa.ChunkedArray | None:
    """A text column as Arrow strings: the column's own buffers when Arrow holds it already (what
    the CSV readers make; chunked as read), else converted; None when some value is missing or is not
    Unicode text Arrow can hold."""
    try:
        if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
            array = pa.array(values)
        else:
            array = pa.array(values.to_numpy(dtype=object), type=pa.string())
    except (pa.ArrowException, UnicodeError):
        return None
    return array if array.null_count == 0 else None


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype="int64")


def _chars(values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Strings as a (rows, width) matrix of code points (0 past the end) and their lengths;
    a string longer than `width` gets length -1. Vectorised: one conversion to a fixed-width
    numpy string array (one spare character tells a too-long string)."""
    fixed = np.asarray(values, dtype=f"<U{width + 1}")
    length = np.char.str_len(fixed).astype("int64")
    chars = fixed.view(np.uint32).reshape(len(values), width + 1)[:, :width]
    return chars, np.where(length <= width, length, -1)


def _chunked(function: Callable[..., tuple], values: pd.Series, **kwargs) -> tuple[np.ndarray, ...]:
    array = values.to_numpy(dtype=object)
    if len(array) <= CHUNK_ROWS:
        return function(array, **kwargs)
    parts = [function(array[start:start + CHUNK_ROWS], **kwargs) for start in range(0, len(array), CHUNK_ROWS)]
    return tuple(np.concatenate(column) for column in zip(*parts))


_POWERS = 10 ** np.arange(19, dtype="int64")


def _decimal_units(values: np.ndarray, *, places: int, int_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned decimals `\\d{1,int_digits}(\\.\\d{1,places})?` -> (int64 units of 10**-places, ok).

    Exact integer arithmetic over the code-point matrix, one character column at a time."""
    width = int_digits + 1 + places
    chars, length = _chars(values, width)
    rows = len(values)
    ok = length >= 1
    digits = np.zeros(rows, dtype="int64")
    dots = np.zeros(rows, dtype="int64")
    dot_at = np.full(rows, -1, dtype="int64")
    for j in range(width):
        code = chars[:, j]
        inside = j < length
        is_digit = (code >= 48) & (code <= 57)
        is_dot = inside & (code == 46)
        ok &= ~inside | is_digit | is_dot
        dot_at = np.where(is_dot & (dot_at < 0), j, dot_at)
        dots += is_dot
        take = inside & is_digit
        digits = np.where(take, digits * 10 + (code.astype("int64") - 48), digits)
    has_dot = dots == 1
    decimals = np.where(has_dot, length - dot_at - 1, 0)
    whole = np.where(has_dot, dot_at, length)
    ok &= (dots <= 1) & (whole >= 1) & (whole <= int_digits) & (~has_dot | ((decimals >= 1) & (decimals <= places)))
    units = np.where(ok, digits * _POWERS[np.clip(places - decimals, 0, 18)], 0)
    return units, ok


def _decimal_units_arrow(values: pa.Array, *, places: int, int_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """_decimal_units over an Arrow string array, in C++: the shape tested by RE2 (whose \\d is
    ASCII 0-9 only and whose $ is the end of the text), then the values read by Arrow's cast: a whole
    number to int64, an amount to a decimal of `places`, which scales every value exactly (the shape
    allows no more decimals). Units are int64: at most 18 digits."""
    if int_digits + places > 18:
        raise ValueError(f"{int_digits + places} digits do not fit in int64 units")
    fraction = rf"(?:\.\d{{1,{places}}})?" if places else ""
    ok = pc.fill_null(pc.match_substring_regex(values, rf"^\d{{1,{int_digits}}}{fraction}$"), False)
    digits = pc.if_else(ok, values, "0")
    if places:
        units = _decimal128_units(pc.cast(digits, pa.decimal128(int_digits + places, places)))
    else:
        units = pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False).copy()
    return units, ok.to_numpy(zero_copy_only=False)


def _decimal128_units(scaled: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The unscaled integers of non-negative decimal128 values below 2**63, read from their buffers:
    a decimal128 is two 64-bit words in the machine's order, the low one first on a little-endian
    machine."""
    low = 0 if sys.byteorder == "little" else 1
    chunks = scaled.chunks if isinstance(scaled, pa.ChunkedArray) else [scaled]
    words = [np.frombuffer(chunk.buffers()[1], dtype=np.int64)[2 * chunk.offset + low:2 * (chunk.offset + len(chunk)):2]
             for chunk in chunks if len(chunk)]
    return np.concatenate(words) if words else np.empty(0, dtype="int64")


def _iso_dates(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """YYYY-MM-DD -> (shape ok, calendar ok)."""
    chars, length = _chars(values, 10)
    d = chars.astype("int64") - 48
    digits = ((d[:, [0, 1, 2, 3, 5, 6, 8, 9]] >= 0) & (d[:, [0, 1, 2, 3, 5, 6, 8, 9]] <= 9)).all(axis=1)
    shape = (length == 10) & digits & (chars[:, 4] == 45) & (chars[:, 7] == 45)
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month = d[:, 5] * 10 + d[:, 6]
    day = d[:, 8] * 10 + d[:, 9]
    return shape, shape & _calendar(year, month, day)


def _whole(values: pa.Array, start: int, stop: int) -> np.ndarray:
    return pc.cast(pc.utf8_slice_codeunits(values, start, stop), pa.int64()).to_numpy(zero_copy_only=False)


_FIRST_DAY = (np.datetime64("0001-01-01") - np.datetime64("1970-01-01")).astype(int)  # as date32: days since 1970-01-01


def _calendar(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_ok = (month >= 1) & (month <= 12)
    days = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + ((month == 2) & leap)
    return (year >= 1) & month_ok & (day >= 1) & (day <= days)


def _all_iso_dates(values: pa.Array, *, from_year_one: bool = True) -> bool:
    """Whether every value is a calendar date YYYY-MM-DD (of year 1 or later), by Arrow's own cast
    to date32 (exactly ten characters, ASCII digits and two hyphens, the day within its month),
    which refuses the whole column at its first bad value: a file without one is checked at once."""
    try:
        days = pc.cast(values, pa.date32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    if days.null_count:
        return False
    return not from_year_one or not len(days) or pc.min(days).value >= _FIRST_DAY


def _iso_dates_arrow(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """_iso_dates' (shape ok, calendar ok) over an Arrow string array, in C++. A column of good
    dates is known as such by _all_iso_dates; otherwise the shape is tested by RE2 (ASCII digits; $
    is the end of the text, so a NUL or a newline after the day fails it), then year, month and day
    are cast from their slices."""
    if _all_iso_dates(values):
        every = np.ones(len(values), dtype=bool)
        return every, every.copy()
    shape = pc.fill_null(pc.match_substring_regex(values, r"^\d{4}-\d{2}-\d{2}$"), False)
    safe = pc.if_else(shape, values, "0000-00-00")
    calendar = _calendar(_whole(safe, 0, 4), _whole(safe, 5, 7), _whole(safe, 8, 10))
    shape = shape.to_numpy(zero_copy_only=False)
    return shape, shape & calendar


def _iso_months_arrow(values: pa.Array) -> np.ndarray:
    """_iso_months over an Arrow string array (as _iso_dates_arrow: the month's first day tells a
    column of good months at once; a month of year 0000 is a month)."""
    first_days = pc.binary_join_element_wise(values, pa.scalar("-01", values.type), pa.scalar("", values.type))
    if _all_iso_dates(first_days, from_year_one=False):
        return np.ones(len(values), dtype=bool)
    shape = pc.fill_null(pc.match_substring_regex(values, r"^\d{4}-\d{2}$"), False)
    month = _whole(pc.if_else(shape, values, "0000-00"), 5, 7)
    return shape.to_numpy(zero_copy_only=False) & (month >= 1) & (month <= 12)


def _iso_months(values: np.ndarray) -> tuple[np.ndarray]:
    """YYYY-MM (month 01–12) -> ok."""
    chars, length = _chars(values, 7)
    d = chars.astype("int64") - 48
    digits = ((d[:, [0, 1, 2, 3, 5, 6]] >= 0) & (d[:, [0, 1, 2, 3, 5, 6]] <= 9)).all(axis=1)
    month = d[:, 5] * 10 + d[:, 6]
    return ((length == 7) & digits & (chars[:, 4] == 45) & (month >= 1) & (month <= 12),)


# --- the files ---------------------------------------------------------------------------------------
