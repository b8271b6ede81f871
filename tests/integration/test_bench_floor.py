"""The bench's floor of a first load (demo.bench.load_floor): every step measured, every case stored
once, nothing left behind; and the first-load verdict names it."""
from __future__ import annotations

import pytest
from django.db import connection

from demo import bench
from tests.conftest import require_service
from tests.golden.bulk import REGION, load_worked_example

pytestmark = pytest.mark.django_db


def test_the_floor_stores_every_case_of_the_file_and_rolls_back(worked_bundle):
    require_service(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")
    load_worked_example(worked_bundle)
    lines = (worked_bundle / "cases.csv").read_text(encoding="utf-8-sig").strip().splitlines()
    floor = bench.load_floor(worked_bundle / "cases.csv", REGION)
    assert floor["cases"] == len(lines) - 1
    assert list(floor["steps"]) == ["copy", "insert", "primary_key", "unique_key", "pool_index", "patient_index", "foreign_key"]
    assert floor["seconds"] == pytest.approx(sum(floor["steps"].values()), abs=0.01)
    assert list(floor["direct"]["steps"]) == ["copy_logged", "primary_key", "unique_key", "pool_index", "patient_index"]
    assert not {"bench_floor_cases", "bench_floor_direct"} & set(connection.introspection.table_names())


def test_the_first_load_verdict_names_the_floor():
    results = {"load": {"ratio_to_copy": 30.0, "floor_ratio_to_copy": 6.2, "direct_floor_ratio_to_copy": 4.1,
                        "phases": {"read": 1.0, "write": 20.0}}}
    line = next(line for line in bench.verdicts(results) if line.startswith("bundle load / bare COPY (first load)"))
    assert "MISSED" in line and "write 20.0s" in line and "6.2× (floor)" in line and "indexed table 4.1×" in line
    results["load"]["ratio_to_copy"] = 4.9
    line = next(line for line in bench.verdicts(results) if line.startswith("bundle load / bare COPY (first load)"))
    assert line.endswith("MET")
