"""MONITORING.md §1 by hand on small pools."""
from decimal import Decimal as D

from monitoring.domain.indicators import indicators_compute
from tests.unit.monitoring.factories import case, frame


def _by_key(rows):
    return {(r.institution, r.period): r for r in rows}


def _pool():
    return frame([
        # H1: two stable GB25 stays (bed days 2 and 4, cost 1000 and 3000), one high, one halved
        case("H1", "a1", adm="2025-01-01", dis="2025-01-03", total=1000, self_pay=100, base=100, category="normal", points=100, halved=True),
        case("H1", "a2", adm="2025-02-01", dis="2025-02-05", total=3000, self_pay=200, base=100, category="high", points=150),
        # H2: one stable GB25 stay of 6 days, cost 2000 (transfer, low), one unstable stay
        case("H2", "b1", adm="2025-01-10", dis="2025-01-16", total=2000, self_pay=0, base=100, category="low", status="transfer", points=50),
        case("H2", "b2", adm="2025-02-10", dis="2025-02-11", total=500, self_pay=500, group="0000", stable=False, category="unstable", points=5),
    ])


def test_pool_and_institution_year_rows_follow_each_definition():
    rows = _by_key(indicators_compute(_pool(), year=2025))
    pool = rows[("*", "2025")]
    assert pool.cases == 4
    assert pool.points == D("305.0000")
    assert pool.cmi == D("1.0000")                        # (100+100+100)/100 / 3 stable cases
    assert pool.cost_per_point == D("21.3115")            # 6500 / 305 = 21.31147…
    assert pool.time_index == D("1.0000") and pool.cost_index == D("1.0000")
    assert pool.high_share == D("0.2500") and pool.low_share == D("0.2500")
    assert pool.readmission_share == D("0.2500")
    assert pool.self_pay_share == D("0.1231")             # 800 / 6500 = 0.12307…
    assert pool.transfer_share == D("0.2500") and pool.special_review_share == D("0.0000")

    h1 = rows[("H1", "2025")]
    # GB25 pool mean bed days (2+4+6)/3 = 4; H1 mean 3 → 2 × 3/4 / 2 = 0.75; cost means 2000 vs 2000
    assert h1.time_index == D("0.7500") and h1.cost_index == D("1.0000")
    assert h1.cost_per_point == D("16.0000")              # 4000 / 250
    assert h1.self_pay_share == D("0.0750")               # 300 / 4000
    h2 = rows[("H2", "2025")]
    assert h2.time_index == D("1.5000")                   # 6 / 4
    assert h2.cmi == D("1.0000")                          # the unstable stay is not in the CMI
    assert h2.self_pay_share == D("0.2000")               # 500 / 2500


def test_months_are_periods_and_the_order_is_pool_first_year_first():
    rows = indicators_compute(_pool(), year=2025)
    assert [(r.institution, r.period) for r in rows] == [
        ("*", "2025"), ("*", "2025-01"), ("*", "2025-02"),
        ("H1", "2025"), ("H1", "2025-01"), ("H1", "2025-02"),
        ("H2", "2025"), ("H2", "2025-01"), ("H2", "2025-02"),
    ]
    by = _by_key(rows)
    assert by[("H2", "2025-02")].cmi is None and by[("H2", "2025-02")].time_index is None  # no stable cases
    assert by[("H1", "2025-01")].time_index == D("0.5000")  # January GB25: H1 2 days, pool mean (2+6)/2 = 4
    assert by[("H1", "2025-02")].time_index == D("1.0000")  # alone in GB25 in February


def test_no_points_leaves_cost_per_point_empty_and_zero_cost_leaves_self_pay_share_empty():
    rows = _by_key(indicators_compute(frame([case("H1", total=0, points=0, base=0)]), year=2025))
    assert rows[("H1", "2025")].cost_per_point is None
    assert rows[("H1", "2025")].self_pay_share is None
    assert rows[("H1", "2025")].cost_index == D("1.0000")


def test_a_half_way_index_rounds_up_exactly():
    # GB25 over H1 (1 stay of 1 day) and H2 (15 stays of 1 day, 1 of 16 days): S_g = 32, n_g = 17
    # H1 term = 1 × 17 / 32 = 0.53125 → r4 0.5313 (half-up on the exact value)
    rows = [case("H1", adm="2025-01-01", dis="2025-01-02")]
    rows += [case("H2", adm="2025-01-01", dis="2025-01-02") for _ in range(15)]
    rows += [case("H2", adm="2025-01-01", dis="2025-01-17")]
    by = _by_key(indicators_compute(frame(rows), year=2025))
    assert by[("H1", "2025")].time_index == D("0.5313")
