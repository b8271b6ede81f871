"""The bench steps of the special-outpatient settlement run end to end (small sizes here; make bench
runs them at full size): the bulk engine conserves every fen, the counter re-settles late claims."""
from __future__ import annotations

import pytest

from demo.benefits_bench import measure_counter, measure_settlement, verdicts

pytestmark = pytest.mark.django_db


def test_the_settlement_step_settles_and_conserves():
    figures = measure_settlement(claims=5000, patients=500, seed=3)
    assert figures["claims"] == 5000 and figures["conserved"] is True
    assert figures["critical_claims"] > 0 and figures["capped_claims"] > 0


def test_the_counter_step_posts_claims_and_late_ones_correct_later_claims():
    figures = measure_counter(earlier=30, requests=10)
    assert figures["requests"] == 10 and figures["p95_ms"] > 0
    lines = verdicts({"benefits_counter": figures, "benefits_settle": {"claims": 10, "seconds": 0.1}})
    assert len(lines) == 2 and lines[0].endswith("MET")
