from decimal import Decimal as D

from monitoring.domain.evaluation import evaluation_score
from monitoring.domain.parameters import ScreeningParameters


def test_score_deducts_each_rule_once_and_never_below_zero():
    p = ScreeningParameters()
    assert evaluation_score(rules=[], params=p) == D("100")
    assert evaluation_score(rules=["split_stay", "split_stay", "low_standard_admission"], params=p) == D("98.5")
    assert evaluation_score(rules=["upcoding", "cost_shifting", "patient_selection"], params=p) == D("89")
    big = ScreeningParameters.from_mapping({"deduction_upcoding": "80", "deduction_cost_shifting": "30"})
    assert evaluation_score(rules=["upcoding", "cost_shifting"], params=big) == D("0")
