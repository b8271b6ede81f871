"""The synthetic region generator (exchange/synthetic.py): reproducible, valid, realistic."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exchange.domain import bundle as exchange
from drg.domain.valuation import Catalog, ValuationScheme, value_cases
from exchange.synthetic import generate_bundle, generate_frames

CASES = 4000
SEED = 11


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    generate_bundle(out=out, cases=CASES, seed=SEED, year=2025)
    return out


@pytest.fixture(scope="module")
def large_frames():
    """A larger region for the mix statistics (in memory, not written)."""
    return generate_frames(cases=60_000, seed=SEED, year=2025)


def _bytes_of(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


# --- determinism ------------------------------------------------------------------------------------

def test_the_same_seed_writes_byte_identical_files(bundle_dir, tmp_path):
    again = tmp_path / "again"
    generate_bundle(out=again, cases=CASES, seed=SEED, year=2025)

    assert _bytes_of(again) == _bytes_of(bundle_dir)


def test_another_seed_writes_other_cases(bundle_dir, tmp_path):
    other = tmp_path / "other"
    generate_bundle(out=other, cases=CASES, seed=SEED + 1, year=2025)

    assert (other / "cases.csv").read_bytes() != (bundle_dir / "cases.csv").read_bytes()
    assert (other / "drg_groups.csv").read_bytes() == (bundle_dir / "drg_groups.csv").read_bytes()


def test_a_region_code_relabels_the_institutions(tmp_path):
    generate_bundle(out=tmp_path, cases=500, seed=1, region="331083")

    params = json.loads((tmp_path / "params.json").read_text(encoding="utf-8"))
    institutions = pd.read_csv(tmp_path / "institutions.csv", dtype=str)
    assert params["region"] == {"code": "331083", "name": "玉环市"}
    assert institutions["code"].str.startswith("H331083").all()


# --- validity against the exchange rules (pure parsing, no database) --------------------------------

def test_every_file_passes_the_exchange_rules(bundle_dir):
    params, errors = exchange.parse_params((bundle_dir / "params.json").read_text(encoding="utf-8"))
    assert errors == [] and params is not None
    frames = {}
    for spec in exchange.FILE_SPECS:
        frame, read_errors = exchange.read_csv_file(bundle_dir / spec.name, spec)
        assert read_errors == [], spec.name
        frames[spec.name] = frame
    institutions, e1 = exchange.parse_institutions(frames["institutions.csv"])
    groups, e2 = exchange.parse_groups(frames["drg_groups.csv"])
    known_inst, known_groups = set(institutions["code"]), set(groups["code"])
    cases, e3 = exchange.parse_cases(frames["cases.csv"], known_institutions=known_inst, known_groups=known_groups)
    checks = [
        e1, e2, e3,
        exchange.parse_coefficients(frames["coefficients.csv"], known_institutions=known_inst, known_groups=known_groups)[1],
        exchange.parse_tcm_equivalents(frames["tcm_equivalents.csv"], known_groups=known_groups)[1],
        exchange.parse_special_reviews(frames["special_reviews.csv"], known_cases=set(zip(cases["institution_code"], cases["case_no"])))[1],
        exchange.parse_itemized_claims(frames["itemized_claims.csv"], known_institutions=known_inst)[1],
        exchange.parse_point_adjustments(frames["point_adjustments.csv"], known_institutions=known_inst, known_groups=known_groups)[1],
        exchange.parse_evaluations(frames["evaluations.csv"], known_institutions=known_inst)[1],
        exchange.parse_chronic_enrollments(frames["chronic_enrollments.csv"], known_institutions=known_inst)[1],
        exchange.parse_tcm_workload(frames["tcm_workload.csv"], known_institutions=known_inst)[1],
        exchange.parse_hospice_services(frames["hospice_services.csv"], known_institutions=known_inst)[1],
        exchange.parse_screenings(frames["screenings.csv"], known_institutions=known_inst)[1],
    ]
    assert [error for found in checks for error in found] == []
    assert len(cases) == CASES


def test_discharges_fall_in_the_year_with_a_few_in_the_next_january(bundle_dir):
    cases = pd.read_csv(bundle_dir / "cases.csv", dtype=str)

    discharge = pd.to_datetime(cases["discharge_date"])
    assert discharge.min() >= pd.Timestamp("2025-01-01")
    assert discharge.max() <= pd.Timestamp("2026-01-31")
    assert (discharge.dt.year == 2026).mean() < 0.01


@pytest.mark.django_db
def test_the_bundle_loads_without_errors(bundle_dir):
    from drg.models import Case
    from exchange.bundle import bundle_load

    bundle_load(path=bundle_dir)

    assert Case.objects.count() == CASES


# --- a realistic mix --------------------------------------------------------------------------------

def _valued(params: dict, frames: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Value the year's cases with the spec's valuation (drg.domain.valuation) for the statistics."""
    groups = frames["drg_groups.csv"]

    def units(column: pd.Series, scale: int) -> pd.Series:
        return column.map(lambda v: pd.NA if v == "" else int(Decimal(v) * scale)).astype("Int64")

    catalog = Catalog(
        groups=pd.DataFrame({
            "code": groups["code"], "kind": groups["kind"], "base_u": units(groups["base_points"], 10_000),
            "avg_fen": units(groups["avg_cost"], 100), "daily_u": units(groups["daily_points"], 10_000),
            "same_price": groups["same_price"] == "1", "readmission_exempt": groups["readmission_exempt"] == "1",
        }),
        institution_coefficients={
            row.code: int(Decimal(row.coefficient) * 10_000) for row in frames["institutions.csv"].itertuples() if row.coefficient
        },
        tcm_equivalents=dict(zip(frames["tcm_equivalents.csv"]["drg_code"], frames["tcm_equivalents.csv"]["equivalent_code"])),
    )
    cases = frames["cases.csv"].copy()
    cases = cases[cases["discharge_date"].str.startswith(str(params["year"]))].reset_index(drop=True)
    reviews = frames["special_reviews.csv"]
    review = dict(zip(reviews["institution_code"] + "|" + reviews["case_no"], reviews["approved_cost"]))
    cases["review_fen"] = (cases["institution_code"] + "|" + cases["case_no"]).map(
        lambda key: int(Decimal(review[key]) * 100) if key in review else -1)
    cases["institution"] = cases["institution_code"]
    cases["total_fen"] = cases["total_cost"].map(lambda v: int(Decimal(v) * 100))
    cases["tcm_treatment"] = cases["tcm_treatment"] == "1"
    scheme = ValuationScheme(all_case_avg_cost=Decimal(params["scheme"]["all_case_avg_cost"]))
    parts = [value_cases(pool, catalog, scheme) for _, pool in cases.groupby("fund")]
    return cases, pd.concat(parts).loc[cases.index]


def test_the_case_mix_has_realistic_outlier_readmission_and_tcm_shares(large_frames):
    params, frames, stats = large_frames

    cases, valued = _valued(params, frames)
    share = valued["category"].value_counts(normalize=True)

    assert 0.025 <= share["high"] <= 0.06
    assert 0.05 <= share["low"] <= 0.12          # ~5% low cost plus incomplete stays
    assert 0.01 <= share["per_diem"] <= 0.04
    assert 0.002 <= share["unstable"] <= 0.02
    assert 0.0003 <= share["special_review"] <= 0.003
    assert 0.015 <= valued["readmission_halved"].mean() <= 0.04
    assert 0.05 <= (cases["tcm_treatment"]).mean() <= 0.25
    assert 0.66 <= (cases["fund"] == "employee").mean() <= 0.74
    per_diem_days = valued.loc[valued["category"] == "per_diem", "bed_days"]
    assert per_diem_days.median() >= 20


def test_tcm_cases_are_treated_mostly_at_tcm_hospitals_with_a_tcm_rate_above_the_first_tier(large_frames):
    params, frames, _ = large_frames
    cases, institutions = frames["cases.csv"], frames["institutions.csv"]
    tcm_hospitals = set(institutions.loc[(institutions["category"] == "tcm") & (institutions["level"].astype(int) >= 2), "code"])

    at_tcm = cases["institution_code"].isin(tcm_hospitals)
    tcm = cases["tcm_treatment"] == "1"
    rate = cases.loc[at_tcm, "tcm_cost"].astype(float).sum() / cases.loc[at_tcm, "total_cost"].astype(float).sum()

    assert tcm[at_tcm].mean() > 3 * tcm[~at_tcm].mean()
    assert 0.30 <= rate <= 0.50


def test_budgets_leave_each_pool_near_balance(large_frames):
    params, frames, stats = large_frames

    for fund, expected_sign in (("employee", 1), ("resident", -1)):
        budget = params["budgets"][fund]
        total = Decimal(budget["base_amount"]) * (1 + Decimal(budget["growth_rate"])) + Decimal(budget["policy_adjustment"])
        inpatient = total * (1 - Decimal(budget["reserve_rate"]))
        claims = frames["itemized_claims.csv"]
        itemized = claims.loc[claims["fund"] == fund, "approved_amount"].map(Decimal).sum()
        drg_budget = float(inpatient - itemized)
        fund_claims = stats[f"fund_claims_{fund}"]
        balance = (drg_budget - fund_claims) / drg_budget
        assert 0.01 <= expected_sign * balance <= 0.06, (fund, balance)


def test_amounts_respect_the_case_invariants(large_frames):
    _, frames, _ = large_frames
    cases = frames["cases.csv"]
    total = cases["total_cost"].map(Decimal)

    assert cases["total_cost"].str.fullmatch(r"\d+\.\d{2}").all()
    assert (cases["self_pay"].map(Decimal) <= total).all()
    assert (cases["tcm_cost"].map(Decimal) <= total).all()
    assert (cases["discharge_date"] >= cases["admission_date"]).all()
    assert not cases.duplicated(["institution_code", "case_no"]).any()
    assert np.isin(cases["surgery_grade"].unique(), ["0", "1", "2", "3", "4"]).all()
