"""The spec's worked example (SETTLEMENT.md §8), reproduced file for file through the bulk commands
exactly as another system would drive them: load_bundle, twelve finalized monthly `clear` runs and
the annual run per fund, export_clearing for each, pay_incentives."""
from __future__ import annotations

import pytest

from tests.golden.bulk import assert_reproduces, clear_and_export_year, load_worked_example


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
def test_every_expected_file_is_reproduced_exactly(worked_bundle, worked_expected, tmp_path):
    load_worked_example(worked_bundle)
    out = tmp_path / "out"

    clear_and_export_year(out)

    assert_reproduces(out, worked_expected)
