"""drg.domain.rows: a CSV file without quotes or carriage returns split into lines, some of them read
as the whole file's reading reads them (numbers and errors included), and a sample of their keys."""
from __future__ import annotations

import numpy as np

from drg.domain.cases import CASES
from drg.domain.rows import LINE, line_sample, plain_lines, read_csv_text, read_lines

HEADER = ",".join(CASES.columns)
ROW = "c{n},H1,employee,P00{n},2025-01-0{n},2025-01-0{m},GB25,100.00,10.00,normal,0,0.00,0,0"


def _file(*lines: str, end: str = "\n") -> bytes:
    return ("\n".join([HEADER, *lines]) + end).encode("utf-8")


def test_plain_lines_are_the_records_after_the_header():
    plain = plain_lines(b"\xef\xbb\xbf" + _file(ROW.format(n=1, m=2), "", ROW.format(n=3, m=4)))

    assert plain.header == HEADER
    assert plain.lines == [ROW.format(n=1, m=2).encode(), b"", ROW.format(n=3, m=4).encode()]
    assert plain_lines(_file(ROW.format(n=1, m=2), end="")).lines == [ROW.format(n=1, m=2).encode()]


def test_files_a_reader_might_split_otherwise_are_not_plain():
    assert plain_lines(_file('"c1",H1')) is None
    assert plain_lines(_file(ROW.format(n=1, m=2)).replace(b"\n", b"\r\n")) is None
    assert plain_lines(b"\xff\xfe,case_no\n") is None
    assert plain_lines(b"") is None


def test_some_lines_read_as_the_whole_file_reads_them():
    lines = [ROW.format(n=1, m=2), "", "c2,H1,too,few", ROW.format(n=3, m=4), ROW.format(n=5, m=6)]
    plain = plain_lines(_file(*lines))
    whole, whole_errors = read_csv_text(_file(*lines).decode(), CASES)

    frame, errors = read_lines(plain, np.array([1, 2, 4]), CASES)

    assert list(frame[LINE]) == [6]  # the blank line 3 is skipped, line 4 is an error
    assert list(frame["case_no"]) == ["c5"]
    assert errors == whole_errors and [e.line for e in errors] == [4]
    assert whole[whole[LINE] == 6].drop(columns=LINE).reset_index(drop=True).equals(frame.drop(columns=LINE).reset_index(drop=True))


def test_lines_that_are_not_utf8_are_left_to_the_whole_files_reading():
    plain = plain_lines(_file(ROW.format(n=1, m=2)) + b"c9,H\xff1\n")

    assert read_lines(plain, np.array([1]), CASES) is None
    assert read_lines(plain, np.array([0]), CASES)[0]["case_no"].tolist() == ["c1"]


def test_a_sample_names_keys_and_discharge_years_of_lines_spread_over_the_file():
    lines = [ROW.format(n=n % 9 + 1, m=n % 9 + 1).replace("c", f"x{n}-", 1) for n in range(100)]
    lines[50] = lines[50].replace("2025-01", "2026-01")
    lines[10] = "short,line"
    plain = plain_lines(_file(*lines))

    sample = line_sample(plain, CASES.columns, rows=10)

    assert len(sample.keys) == 9 and sample.keys[0] == ("H1", "x0-1")   # every 10th line; line 10 is skipped
    assert sample.years == (2025, 2026)
    assert line_sample(plain_lines(_file("a,b")), list(CASES.columns), rows=10).years is None
