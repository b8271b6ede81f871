"""Synthetic region generator: a complete, realistic exchange bundle (EXCHANGE.md) for demos,
benchmarks and tests.

Pure and seeded: numpy and pandas only (no Django); the same seed, size, year and region give
byte-identical files. Vectorised so that a million cases take seconds. The reference data (the real
CHS-DRG 1.1 group codes and names, and the DEMO institutions, base points and mix) live in
`fixtures/` and are described in `fixtures/README.md`; every amount produced here is synthetic.

What the generated region looks like (see docs/demo.md):
- case volume by institution (fixtures/institution_profiles_demo.csv) and a group mix per kind of
  institution: a county hospital does everything, a township health centre only simple medical
  groups, the psychiatric and rehabilitation hospitals their per-diem groups;
- costs around the valuation group's avg_cost: a lognormal body plus ~4% high outliers (r ≥ m) and
  ~5% low (r ≤ 0.4); incomplete stays (transfer, against advice, death) ~3.5%;
- per-diem stays with long bed days; readmissions (same patient, institution and group, 0–15 days
  after discharge) ~2.5%; repeated chemotherapy cycles (readmission-exempt groups);
- TCM cases at TCM hospitals, valued as the Western equivalent when the group has one;
- ~70% employee fund; approved special reviews (~0.1%), special-outpatient itemized claims, point
  adjustments, evaluations and incentive inputs; budgets sized so each pool ends near balance
  (the employee pool slightly under budget, the resident pool slightly over; some months overrun).
"""
from __future__ import annotations

import json
import time
from itertools import islice
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from benefits.domain.engine import settle_frame
from benefits.domain.parameters import default_terms
from benefits.synthetic import claim_file_frame, disease_caps_fen, special_outpatient_frames

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"
DEFAULT_REGION = "339901"
FIXTURE_REGION = "339901"  # the region code the institution fixture is written for

EMPLOYEE_SHARE = 0.70
HIGH_SHARE = 0.04
LOW_SHARE = 0.05
READMISSION_SHARE = 0.025
UNGROUPABLE_SHARE = 0.003
SPECIAL_REVIEW_SHARE = 0.001
NEXT_JANUARY_SHARE = 0.0015
STATUS_P = {"transfer": 0.012, "against_advice": 0.018, "death": 0.004}
# Discharges per month (winter respiratory peak, Spring Festival dip in February).
SEASONALITY = np.array([1.10, 0.80, 1.00, 0.98, 1.00, 0.97, 1.02, 1.03, 0.98, 0.96, 1.02, 1.14])
CHRONIC_DISEASES = ("hypertension", "diabetes", "copd", "coronary_heart_disease", "ckd")
ADJUSTMENT_REASONS = {
    1: "分解住院",
    2: "高套点数",
    3: "低标准入院",
    5: "虚构病例（欺诈骗保）",
}

CASE_COLUMNS = [
    "case_no", "institution_code", "fund", "patient_id", "admission_date", "discharge_date", "drg_code",
    "total_cost", "self_pay", "discharge_status", "tcm_treatment", "tcm_cost", "surgery_grade",
    "malignant_tumor_surgery",
]

Progress = Callable[[str], None]


# --- fixtures ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fixtures:
    region: dict
    catalog: pd.DataFrame
    mix: pd.DataFrame
    tcm_equivalents: pd.DataFrame
    institutions: pd.DataFrame
    profiles: pd.DataFrame
    coefficients: pd.DataFrame


def load_fixtures(path: Path = FIXTURES_DIR) -> Fixtures:
    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(path / name, dtype=str, keep_default_na=False, encoding="utf-8")

    profiles = read("institution_profiles_demo.csv")
    profiles["volume_weight"] = profiles["volume_weight"].astype(float)
    profiles["tcm_share"] = profiles["tcm_share"].astype(float)
    for frame, column in ((read("drg_catalog_demo.csv"), "code"), (read("institutions_demo.csv"), "code"),
                          (read("institutions_demo.csv"), "group_code")):
        bad = frame[~frame[column].str.fullmatch(r"[A-Za-z0-9_-]*")][column]
        if len(bad):
            raise ValueError(f"fixture codes must be plain letters and digits: {bad.tolist()[:5]}")
    mix = read("drg_mix_demo.csv")
    mix["volume_weight"] = mix["volume_weight"].astype(float)
    return Fixtures(
        region=json.loads((path / "demo_region.json").read_text(encoding="utf-8")),
        catalog=read("drg_catalog_demo.csv"),
        mix=mix,
        tcm_equivalents=read("tcm_equivalents_demo.csv"),
        institutions=read("institutions_demo.csv"),
        profiles=profiles,
        coefficients=read("coefficients_demo.csv"),
    )


# --- result -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BundleSummary:
    path: Path | None
    region: str
    year: int
    seed: int
    rows: dict[str, int]
    budgets: dict[str, dict[str, str]]
    fund_claims: dict[str, str]
    seconds: float
    stats: dict[str, float] = field(default_factory=dict)
    planted: Path | None = None  # the ground truth of planted patterns, beside the bundle


# --- helpers ----------------------------------------------------------------------------------------

_CENTS = np.array([f".{i:02d}" for i in range(100)])
_SMALL_INTS = np.array([str(i) for i in range(10)], dtype=object)


def _money_str(fen: np.ndarray) -> np.ndarray:
    """Integer fen -> 'yuan.ff' strings (exact; amounts here are never negative)."""
    yuan, cents = np.divmod(np.asarray(fen, dtype=np.int64), 100)
    return np.char.add(yuan.astype(np.str_), _CENTS[cents]).astype(object)


def _dates_str(days: np.ndarray) -> np.ndarray:
    """datetime64[D] -> 'YYYY-MM-DD' strings through a lookup table of the days spanned."""
    days = np.asarray(days, dtype="datetime64[D]")
    if not len(days):
        return np.array([], dtype=object)
    first = days.min()
    table = np.datetime_as_string(np.arange(first, days.max() + 1), unit="D").astype(object)
    return table[(days - first).astype(np.int64)]


def _digits(values: np.ndarray) -> np.ndarray:
    """Small non-negative integers (flags, grades) -> strings."""
    return _SMALL_INTS[np.asarray(values, dtype=np.int64)]


def _stable_unit(n: int) -> np.ndarray:
    """A fixed number in [0, 1) per patient index, the same whatever the seed or the region's size
    (Knuth's multiplicative hash of the index)."""
    return ((np.arange(n, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(2**32)).astype(np.float64) / 2**32


def _patient_ids(n_patients: int) -> np.ndarray:
    return np.array([f"P{p:09d}" for p in range(n_patients)], dtype=object)


def _adrg_kind(code: str) -> str:
    """CHS-DRG: 2nd letter A–J surgical (手术室手术), K–Q non-OR procedure, R–Z medical."""
    if code == "0000":
        return "none"
    letter = code[1]
    if "A" <= letter <= "J":
        return "surgical"
    if "K" <= letter <= "Q":
        return "procedure"
    return "medical"


def _high_multiple(base: np.ndarray, tiers: list[dict]) -> np.ndarray:
    """m of the first tier whose upto ≥ base (null upto: no limit); inf beyond the last tier."""
    m = np.full(len(base), np.inf)
    unset = np.ones(len(base), dtype=bool)
    for tier in tiers:
        hit = unset & (True if tier["upto"] is None else base <= float(tier["upto"]))
        m[hit] = float(tier["multiple"])
        unset &= ~hit
    return m


# --- catalog and institution profiles ----------------------------------------------------------------

@dataclass(frozen=True)
class _Catalog:
    codes: np.ndarray
    kind: np.ndarray
    base: np.ndarray          # float points (nan where none)
    avg_cost: np.ndarray      # float yuan (nan where none)
    daily: np.ndarray         # float points per day (nan where none)
    exempt: np.ndarray
    adrg_kind: np.ndarray
    mdc: np.ndarray
    equivalent: np.ndarray    # index of the TCM equivalent group, -1 where none
    mix: np.ndarray           # volume weight
    name_malignant: np.ndarray
    ungroupable: int


def _catalog(fx: Fixtures) -> _Catalog:
    cat = fx.catalog
    codes = cat["code"].to_numpy()
    index = {code: i for i, code in enumerate(codes)}
    num = lambda col: pd.to_numeric(cat[col].replace("", np.nan)).to_numpy(dtype=float)  # noqa: E731
    equivalent = np.full(len(codes), -1)
    for row in fx.tcm_equivalents.itertuples(index=False):
        equivalent[index[row.drg_code]] = index[row.equivalent_code]
    mix = fx.mix.set_index("code")["volume_weight"].reindex(codes).fillna(0).to_numpy()
    names = cat["name"].to_numpy()
    return _Catalog(
        codes=codes,
        kind=cat["kind"].to_numpy(),
        base=num("base_points"),
        avg_cost=num("avg_cost"),
        daily=num("daily_points"),
        exempt=cat["readmission_exempt"].to_numpy() == "1",
        adrg_kind=np.array([_adrg_kind(c) for c in codes]),
        mdc=np.array([c[0] for c in codes]),
        equivalent=equivalent,
        mix=mix,
        name_malignant=np.array(["恶性" in n for n in names]),
        ungroupable=index["0000"],
    )


def _profile_weights(profile: str, cat: _Catalog) -> np.ndarray:
    """Relative case volume per group for one kind of institution (0: the group is not treated there)."""
    base = np.nan_to_num(cat.base, nan=0.0)
    w = cat.mix.copy()
    psych = np.isin(cat.mdc, ["T", "U"])
    rehab = np.char.startswith(cat.codes.astype(str), "XR")
    per_diem = cat.kind == "per_diem"
    tcm_source = cat.equivalent >= 0
    not_a = cat.mdc != "A"
    if profile == "general_tertiary":
        w = w * np.where(psych & per_diem, 0.0, 1.0) * np.where(rehab, 0.2, 1.0)
    elif profile == "general_secondary":
        w = w * (base <= 700) * not_a * np.where(psych & per_diem, 0.0, 1.0) * np.where(rehab, 0.3, 1.0)
    elif profile == "general_private":
        w = w * (base <= 350) * not_a * ~psych * ~rehab * np.where(cat.mdc == "P", 0.0, 1.0)
    elif profile == "general_small":
        w = w * (base <= 200) * not_a * ~psych * ~rehab * np.isin(cat.mdc, ["P", "O"], invert=True)
    elif profile == "tcm_hospital":
        w = (w * (base <= 500) * not_a * np.where(psych & per_diem, 0.0, 1.0) * np.where(rehab, 0.5, 1.0)
             * np.where(tcm_source, 4.0, 1.0) * np.where(cat.mdc == "I", 2.0, 1.0) * np.where(cat.mdc == "P", 0.0, 1.0))
    elif profile == "orthopaedic_tcm":
        w = w * (base <= 400) * ((cat.mdc == "I") | tcm_source) * np.where(tcm_source, 4.0, 1.0)
    elif profile == "maternal_child":
        w = w * (np.isin(cat.mdc, ["O", "N"]) | ((cat.mdc == "P") & (base <= 600))
                 | np.isin(cat.codes, ["JV29", "JB29", "JB39", "DT19", "EX25", "ES35", "GW19"]))
    elif profile == "maternity_private":
        w = w * np.isin(cat.mdc, ["O", "N"]) * (base <= 200)
    elif profile == "psychiatric":
        w = w * (psych | np.isin(cat.codes, ["BX11", "BX13", "BX15"]))
    elif profile == "rehabilitation":
        w = w * (rehab | np.isin(cat.codes, ["IZ19", "BR25", "IU29"]))
    elif profile == "primary":
        w = (w * (((cat.adrg_kind == "medical") & (base <= 110) & ~psych & ~np.isin(cat.mdc, ["A", "P", "O"]))
                  | np.isin(cat.codes, ["XR25", "IS19", "IU29"]))
             * np.where(rehab, 0.3, 1.0))
    else:
        raise ValueError(f"unknown institution profile {profile!r}")
    w = np.asarray(w, dtype=float)
    w[cat.ungroupable] = 0.0
    if w.sum() <= 0:
        raise ValueError(f"profile {profile!r} treats no group")
    return w / w.sum()


# --- the generator --------------------------------------------------------------------------------

def generate_frames(
    *, cases: int, seed: int = 2025, year: int = 2025, region: str | None = None,
    fixtures: Fixtures | None = None, progress: Progress | None = None, employee_share: float = EMPLOYEE_SHARE,
) -> tuple[dict, dict[str, pd.DataFrame], dict[str, float]]:
    """Build the bundle in memory: (params, {file name: frame of strings}, stats).

    `employee_share` is the share of patients in the employee fund (1.0 puts every case in one pool,
    as the benchmark does)."""
    if cases < 100:
        raise ValueError("generate at least 100 cases")
    if not 0.0 <= employee_share <= 1.0:
        raise ValueError("employee_share must be between 0 and 1")
    say = progress or (lambda message: None)
    fx = fixtures or load_fixtures()
    rng = np.random.default_rng(seed)
    cat = _catalog(fx)
    region_code = region or fx.region["region"]["code"]
    region_name = fx.region.get("known_regions", {}).get(region_code, f"演示统筹区 {region_code}")
    scheme = fx.region["scheme"]
    a_cost = float(scheme["all_case_avg_cost"])

    inst = fx.institutions.copy()
    if region_code != FIXTURE_REGION:
        for column in ("code", "group_code"):
            inst[column] = inst[column].str.replace(FIXTURE_REGION, region_code, regex=False)
    profiles = fx.profiles.set_index("code").reindex(fx.institutions["code"]).reset_index()
    if profiles["profile"].isna().any():
        raise ValueError("every institution needs a profile in institution_profiles_demo.csv")
    inst_codes = inst["code"].to_numpy()
    inst_level = inst["level"].astype(int).to_numpy()
    inst_category = inst["category"].to_numpy()
    inst_profile = profiles["profile"].to_numpy()

    # 1. cases per institution, group per case
    say("case mix")
    n_readmit = int(round(cases * READMISSION_SHARE))
    n_base = cases - n_readmit
    counts = rng.multinomial(n_base, profiles["volume_weight"].to_numpy() / profiles["volume_weight"].sum())
    inst_idx = np.repeat(np.arange(len(inst)), counts)
    group = np.empty(n_base, dtype=np.int64)
    start = 0
    weights_cache: dict[str, np.ndarray] = {}
    for i, n in enumerate(counts):
        if n:
            p = weights_cache.setdefault(inst_profile[i], _profile_weights(inst_profile[i], cat))
            group[start:start + n] = rng.choice(len(p), size=n, p=p)
        start += n
    cannot_fail = np.isin(inst_profile[inst_idx], ["psychiatric", "rehabilitation"])
    ungroupable = (rng.random(n_base) < UNGROUPABLE_SHARE) & ~cannot_fail
    group[ungroupable] = cat.ungroupable

    # 2. TCM treatment and the valuation group (中西医同病同价)
    tcm_p = profiles["tcm_share"].to_numpy()[inst_idx]
    tcm_institution = inst_category[inst_idx] == "tcm"
    tcm_p = np.where(tcm_institution & (cat.equivalent[group] >= 0), 0.85, tcm_p)
    tcm_p = np.where(cat.kind[group] == "per_diem", np.minimum(tcm_p, 0.05), tcm_p)
    tcm = rng.random(n_base) < tcm_p

    # 3. patients and funds (a patient belongs to one fund); chemotherapy patients come back in cycles
    n_patients = max(1000, int(cases * 0.82))
    # A patient id belongs to the same fund in every generated year of a region (a bundle's claims are
    # checked against the patients stored from earlier years), so the fund follows from the id alone;
    # the draw is still taken so that everything generated after it stays as it was for a seed.
    rng.random(n_patients)
    patient_fund_employee = _stable_unit(n_patients) < employee_share
    patient = rng.integers(0, n_patients, size=n_base)
    chemo = cat.exempt[group] & (cat.mdc[group] == "R")
    n_chemo = int(chemo.sum())
    if n_chemo:
        patient[chemo] = rng.integers(0, max(10, n_chemo // 5), size=n_chemo)

    # 4. dates
    say("dates and stays")
    month = rng.choice(12, size=n_base, p=SEASONALITY / SEASONALITY.sum())
    month_start = np.array([np.datetime64(f"{year}-{m + 1:02d}-01") for m in range(12)] + [np.datetime64(f"{year + 1}-01-01")])
    month_days = (month_start[1:] - month_start[:-1]).astype(np.int64)
    discharge = month_start[month] + (rng.random(n_base) * month_days[month]).astype(np.int64)
    late = rng.random(n_base) < NEXT_JANUARY_SHARE
    discharge[late] = np.datetime64(f"{year + 1}-01-01") + rng.integers(0, 10, size=int(late.sum()))

    # 5. stays, costs, statuses. An institution's cost level follows its coefficient (差异系数 are
    # set from cost levels), with a little institution-specific drift either way.
    coefficient = pd.to_numeric(inst["coefficient"].replace("", "1")).to_numpy(dtype=float)
    cost_level = coefficient * rng.lognormal(0.0, 0.05, len(inst))
    base_case = _stays(rng, cat, group, tcm, cost_level[inst_idx], scheme, a_cost)
    discharge_days = discharge.astype("datetime64[D]")

    # 6. readmissions: same patient, institution, group and TCM flag, admitted 0–15 days after discharge
    say("readmissions")
    year_end = np.datetime64(f"{year}-12-31")
    eligible = np.flatnonzero(
        (cat.kind[group] == "stable") & ~cat.exempt[group] & (discharge_days <= year_end - 20)
        & (base_case["status"] == "normal")
    )
    n_readmit = min(n_readmit, len(eligible))
    index_case = np.sort(rng.choice(eligible, size=n_readmit, replace=False)) if n_readmit else np.zeros(0, dtype=np.int64)
    r_group, r_tcm = group[index_case], tcm[index_case]
    readmit = _stays(rng, cat, r_group, r_tcm, cost_level[inst_idx[index_case]], scheme, a_cost, body_only=True)
    r_admission = discharge_days[index_case] + rng.integers(0, 16, size=n_readmit)
    r_discharge = r_admission + readmit["los"]

    inst_all = np.concatenate([inst_idx, inst_idx[index_case]])
    group_all = np.concatenate([group, r_group])
    tcm_all = np.concatenate([tcm, r_tcm])
    patient_all = np.concatenate([patient, patient[index_case]])
    discharge_all = np.concatenate([discharge_days, r_discharge])
    admission_all = np.concatenate([discharge_days - base_case["los"], r_admission])
    total_fen = np.concatenate([base_case["total_fen"], readmit["total_fen"]])
    status_all = np.concatenate([base_case["status"], readmit["status"]])
    component = np.concatenate([base_case["component"], readmit["component"]])
    is_readmission = np.concatenate([np.zeros(n_base, dtype=bool), np.ones(n_readmit, dtype=bool)])
    n = len(group_all)
    employee = patient_fund_employee[patient_all]

    # 7. self pay, TCM cost, surgery
    say("amounts")
    level = inst_level[inst_all]
    ratio = np.where(employee, rng.normal(0.18, 0.05, n), rng.normal(0.30, 0.07, n)) - np.where(level == 1, 0.05, 0.0)
    self_fen = np.minimum(total_fen, np.round(total_fen * np.clip(ratio, 0.02, 0.90)).astype(np.int64))
    tcm_inst = inst_category[inst_all] == "tcm"
    tcm_frac = np.where(tcm_all, np.where(tcm_inst, rng.uniform(0.40, 0.80, n), rng.uniform(0.15, 0.45, n)),
                        np.where(tcm_inst & (rng.random(n) < 0.5), rng.uniform(0.0, 0.25, n), 0.0))
    tcm_fen = np.round(total_fen * tcm_frac).astype(np.int64)
    grade = _surgery_grade(rng, cat, group_all, level)
    malignant_p = np.where(cat.name_malignant[group_all], 0.9,
                           np.where(np.isin(cat.codes[group_all], ["GB11", "GB15", "GB29", "GC21", "GC23", "HB11", "HB15",
                                                                  "EB19", "KD19", "LA29", "NC19", "ND19", "JB29"]), 0.35, 0.0))
    malignant = (grade > 0) & (rng.random(n) < malignant_p)

    # 8. order by discharge date and number the cases
    order = np.lexsort((rng.random(n), discharge_all))
    inst_all, group_all, tcm_all, patient_all = inst_all[order], group_all[order], tcm_all[order], patient_all[order]
    discharge_all, admission_all, total_fen, self_fen = discharge_all[order], admission_all[order], total_fen[order], self_fen[order]
    status_all, component, is_readmission, employee = status_all[order], component[order], is_readmission[order], employee[order]
    tcm_fen, grade, malignant = tcm_fen[order], grade[order], malignant[order]
    case_no = np.array([f"C{year}{i:07d}" for i in range(1, n + 1)], dtype=object)
    patient_ids = _patient_ids(n_patients)
    fund = np.where(employee, "employee", "resident").astype(object)

    say("writing cases")
    cases_df = pd.DataFrame({
        "case_no": case_no,
        "institution_code": inst_codes[inst_all],
        "fund": fund,
        "patient_id": patient_ids[patient_all],
        "admission_date": _dates_str(admission_all),
        "discharge_date": _dates_str(discharge_all),
        "drg_code": cat.codes[group_all],
        "total_cost": _money_str(total_fen),
        "self_pay": _money_str(self_fen),
        "discharge_status": status_all,
        "tcm_treatment": _digits(tcm_all),
        "tcm_cost": _money_str(tcm_fen),
        "surgery_grade": _digits(grade),
        "malignant_tumor_surgery": _digits(malignant),
    }, dtype=object)

    # 9. the other files
    say("reviews, claims and incentive inputs")
    in_year = (discharge_all >= np.datetime64(f"{year}-01-01")) & (discharge_all <= year_end)
    special = _special_reviews(rng, cat, group_all, total_fen, component, in_year, cases)
    special_df = pd.DataFrame({
        "institution_code": inst_codes[inst_all[special["rows"]]],
        "case_no": case_no[special["rows"]],
        "approved_cost": _money_str(special["approved_fen"]),
    })
    itemized_df, itemized_fen = _itemized_claims(rng, year, inst_codes, inst_profile, patient_ids, patient_fund_employee, cases)
    adjustments_df = _point_adjustments(rng, inst_codes, inst_all, group_all, fund, cat, inst_profile)
    evaluations_df = _evaluations(rng, inst_codes, inst_all, fund)
    chronic_df = _chronic(rng, year, inst_codes, inst_profile, patient_ids, cases)
    tcm_workload_df = _tcm_workload(rng, year, inst_codes, inst_category, inst_profile)
    hospice_df = _hospice(rng, year, inst_codes, inst_profile, patient_ids)
    screenings_df = _screenings(rng, year, inst_codes, inst_profile, patient_ids, cases)

    # 9b. special-outpatient patients, catalog and claims (BENEFITS.md) from a stream of their own, so
    # the other files stay what they were for a seed; their basic parts are paid from the inpatient budget
    say("special-outpatient patients, diseases and claims")
    so_patients_df, so_diseases_df, so_claims = special_outpatient_frames(
        np.random.default_rng([seed, 16]), year=year, inst_codes=inst_codes, inst_levels=inst_level,
        patient_ids=patient_ids, patient_employee=patient_fund_employee, claims=max(60, cases // 20),
    )
    so_basic_fen = _special_outpatient_basic(
        so_claims, so_patients_df,
        stays=pd.DataFrame({"patient_id": patient_ids[patient_all][in_year], "fund": fund[in_year],
                            "discharge_date": discharge_all[in_year], "share": (total_fen - self_fen)[in_year]}),
    )

    # 10. budgets sized against the year's fund claims so each pool ends near balance
    claims = {}
    params_budgets = {}
    for fund_name, mask in (("employee", employee), ("resident", ~employee)):
        pool = in_year & mask
        f_fen = int((total_fen[pool] - self_fen[pool]).sum())
        claims[fund_name] = f_fen
        if f_fen == 0:
            continue  # a fund without cases (e.g. employee_share=1.0) gets no budget
        settings = fx.region["budgets"][fund_name]
        target = Decimal(settings["target_balance"])
        b_needed = Decimal(f_fen) / 100 * (1 + target)
        inpatient = b_needed + Decimal(itemized_fen.get(fund_name, 0) + so_basic_fen.get(fund_name, 0)) / 100
        total = inpatient / (1 - Decimal(settings["reserve_rate"]))
        base_amount = ((total - Decimal(settings["policy_adjustment"])) / (1 + Decimal(settings["growth_rate"]))).quantize(Decimal("1"), rounding=ROUND_CEILING)
        params_budgets[fund_name] = {
            "base_amount": f"{base_amount}.00",
            **{k: settings[k] for k in ("growth_rate", "growth_cap", "policy_adjustment", "reserve_rate",
                                        "outpatient_share", "primary_care_share")},
        }
    params = {
        "region": {"code": region_code, "name": region_name},
        "year": year,
        "budgets": params_budgets,
        "scheme": scheme,
        "benefits": benefits_params(),
    }

    frames = {
        "institutions.csv": inst[["code", "name", "level", "category", "is_public", "group_code", "coefficient"]],
        "drg_groups.csv": fx.catalog,
        "coefficients.csv": _relabel(fx.coefficients, "institution_code", region_code),
        "tcm_equivalents.csv": fx.tcm_equivalents,
        "cases.csv": cases_df,
        "special_reviews.csv": special_df,
        "itemized_claims.csv": itemized_df,
        "point_adjustments.csv": adjustments_df,
        "evaluations.csv": evaluations_df,
        "chronic_enrollments.csv": chronic_df,
        "tcm_workload.csv": tcm_workload_df,
        "hospice_services.csv": hospice_df,
        "screenings.csv": screenings_df,
        "patients.csv": so_patients_df,
        "special_diseases.csv": so_diseases_df,
        "special_outpatient_claims.csv": claim_file_frame(so_claims),
    }
    stable = cat.kind[group_all] == "stable"
    stats = {
        "cases": float(n),
        "in_year": float(in_year.sum()),
        "employee_share": float(employee.mean()),
        "high_component_share": float((component == "high").mean()),
        "low_component_share": float((component == "low").mean()),
        "stable_share": float(stable.mean()),
        "per_diem_share": float((cat.kind[group_all] == "per_diem").mean()),
        "readmission_share": float(is_readmission.mean()),
        "tcm_share": float(tcm_all.mean()),
        "incomplete_share": float((status_all != "normal").mean()),
        "ungroupable_share": float((group_all == cat.ungroupable).mean()),
        "special_review_share": float(len(special["rows"]) / n),
        "fund_claims_employee": claims["employee"] / 100,
        "fund_claims_resident": claims["resident"] / 100,
        "special_outpatient_claims": float(len(so_claims)),
        "special_outpatient_basic_employee": so_basic_fen.get("employee", 0) / 100,
        "special_outpatient_basic_resident": so_basic_fen.get("resident", 0) / 100,
    }
    return params, frames, stats


def benefits_params() -> dict:
    """params.json `benefits`: the spec's defaults, written out so the bundle says what it uses."""
    out: dict = {}
    for fund_name in ("employee", "resident"):
        t = default_terms(fund_name)
        out[fund_name] = {
            "ratio_by_level": {str(level): str(t.ratio(level)) for level in (1, 2, 3)}, "deductible": str(t.deductible),
            "shared_annual_cap": str(t.shared_annual_cap), "critical_deductible": str(t.critical_deductible),
            "critical_ratio": str(t.critical_ratio),
        }
    t = default_terms("resident")
    out.update({"class_caps": {k: str(v) for k, v in t.class_caps.items()}, "easy_deductible_factor": str(t.easy_deductible_factor),
                "easy_critical_ratio": str(t.easy_critical_ratio), "assistance_ratio": str(t.assistance_ratio),
                "subsistence_uplift": str(t.subsistence_uplift)})
    return out


def _special_outpatient_basic(claims: pd.DataFrame, patients: pd.DataFrame, *, stays: pd.DataFrame) -> dict[str, int]:
    """The basic parts (fen per fund) the generated claims settle to under the default terms: the
    pool pays them as itemized payments, so the budget is sized with them."""
    category = claims["patient_id"].map(dict(zip(patients["patient_id"], patients["category"]))).fillna("ordinary")
    engine = pd.DataFrame({
        "patient_id": claims["patient_id"], "fund": claims["fund"], "category": category, "claim_no": claims["claim_no"],
        "institution_code": claims["institution_code"], "service_date": pd.to_datetime(claims["service_date"]),
        "disease_code": claims["disease_code"], "level": claims["_level"].astype("int64"),
        "total": claims["_total"].astype("int64"), "eligible": claims["_eligible"].astype("int64"),
    })
    stays = stays[stays["patient_id"].isin(set(engine["patient_id"]))]
    basic: dict[str, int] = {}
    for fund_name in ("employee", "resident"):
        terms = default_terms(fund_name)
        part = engine[engine["fund"] == fund_name]
        if part.empty:
            continue
        caps = disease_caps_fen({k: int(v * 100) for k, v in terms.class_caps.items()})
        settled = settle_frame(part, stays[stays["fund"] == fund_name], terms={fund_name: terms}, disease_caps=caps)
        basic[fund_name] = int(settled["basic"].sum())
    return basic


def _relabel(frame: pd.DataFrame, column: str, region_code: str) -> pd.DataFrame:
    if region_code == FIXTURE_REGION:
        return frame
    frame = frame.copy()
    frame[column] = frame[column].str.replace(FIXTURE_REGION, region_code, regex=False)
    return frame


def _stays(rng, cat: _Catalog, group, tcm, cost_level, scheme, a_cost, body_only: bool = False) -> dict:
    """Length of stay, total cost (fen), discharge status and cost component of each case."""
    n = len(group)
    vg = np.where(tcm & (cat.equivalent[group] >= 0), cat.equivalent[group], group)
    kind = cat.kind[vg]
    base = np.nan_to_num(cat.base[vg], nan=100.0)
    avg = np.where(np.isnan(cat.avg_cost[vg]), a_cost, cat.avg_cost[vg])
    m = _high_multiple(base, scheme.get("high_outlier_tiers", [{"upto": None, "multiple": 1.5}]))
    low_limit = float(scheme.get("low_outlier_multiple", "0.4"))

    u = rng.random(n)
    if body_only:
        u = np.ones(n)
    component = np.where(u < HIGH_SHARE, "high", np.where(u < HIGH_SHARE + LOW_SHARE, "low", "body")).astype(object)
    tcm_equivalent = vg != group  # TCM treatment costs less than the surgery it is paid like
    body_centre = np.where(tcm_equivalent, 0.92, 1.0) * cost_level
    ratio_body = np.clip(body_centre * rng.lognormal(-0.5 * 0.22**2, 0.22, n), low_limit + 0.03, np.minimum(m * 0.96, 50.0))
    ratio_high = np.where(np.isfinite(m), m * (1.0 + rng.exponential(0.35, n)), 3.0)
    ratio_low = rng.uniform(0.12, low_limit - 0.01, n)
    ratio = np.select([component == "high", component == "low"], [ratio_high, ratio_low], ratio_body)

    mean_los = np.clip(2.5 + 5.5 * np.sqrt(base / 100.0), 2.0, 30.0)
    los_factor = np.select([component == "high", component == "low"], [1.7, 0.5], 1.0)
    los = np.maximum(0, np.round(mean_los * los_factor * rng.lognormal(-0.06, 0.35, n))).astype(np.int64)
    cost = ratio * avg

    unstable = kind == "unstable"
    if unstable.any():
        k = int(unstable.sum())
        cost[unstable] = avg[unstable] * rng.lognormal(-0.5 * 0.55**2, 0.55, k) * np.where(group[unstable] == cat.ungroupable, 1.2, 1.0)
        component[unstable] = "unstable"

    per_diem = kind == "per_diem"
    if per_diem.any():
        k = int(per_diem.sum())
        psych = cat.mdc[vg[per_diem]] == "T"
        days = np.round(rng.lognormal(np.log(np.where(psych, 42.0, 26.0)), 0.55, k)).astype(np.int64)
        los[per_diem] = np.clip(days, 3, 330)
        daily_cost = cat.daily[vg[per_diem]] * a_cost / 100.0 * rng.lognormal(0.0, 0.12, k)
        cost[per_diem] = los[per_diem] * daily_cost
        component[per_diem] = "per_diem"

    total_fen = np.maximum(5000, np.round(cost * 100.0)).astype(np.int64)

    severe = np.char.endswith(cat.codes[group].astype(str), "1")
    s = rng.random(n)
    death_p = STATUS_P["death"] * np.where(severe, 4.0, 1.0)
    status = np.select(
        [s < death_p, s < death_p + STATUS_P["transfer"], s < death_p + STATUS_P["transfer"] + STATUS_P["against_advice"]],
        ["death", "transfer", "against_advice"], "normal",
    ).astype(object)
    if body_only:
        status[:] = "normal"
    status[per_diem & (status == "transfer")] = "normal"
    return {"los": los, "total_fen": total_fen, "status": status, "component": component}


def _surgery_grade(rng, cat: _Catalog, group, level) -> np.ndarray:
    n = len(group)
    kind = cat.adrg_kind[group]
    base = np.nan_to_num(cat.base[group], nan=0.0)
    u = rng.random(n)
    # cumulative probabilities of grades 1..4 by band
    big = np.array([0.0, 0.10, 0.50, 1.0])
    mid = np.array([0.05, 0.35, 0.80, 1.0])
    small = np.array([0.20, 0.70, 0.95, 1.0])
    proc = np.array([0.50, 0.85, 1.0, 1.0])
    table = np.where((base > 400)[:, None], big, np.where((base > 150)[:, None], mid, small))
    table = np.where((kind == "procedure")[:, None], proc, table)
    grade = 1 + (u[:, None] > table).sum(axis=1)
    grade = np.where(np.isin(kind, ["surgical", "procedure"]), grade, 0)
    grade = np.where(level == 1, np.minimum(grade, 2), grade)
    return np.minimum(grade, 4).astype(np.int64)


def _special_reviews(rng, cat, group, total_fen, component, in_year, cases) -> dict:
    n_reviews = max(1, int(round(cases * SPECIAL_REVIEW_SHARE)))
    candidates = np.flatnonzero(in_year & (component == "high") & (cat.kind[group] == "stable"))
    if len(candidates) < n_reviews:
        candidates = np.flatnonzero(in_year & (cat.kind[group] == "stable"))
    rows = np.sort(rng.choice(candidates, size=min(n_reviews, len(candidates)), replace=False))
    approved = np.round(total_fen[rows] * rng.uniform(0.80, 1.0, len(rows))).astype(np.int64)
    return {"rows": rows, "approved_fen": np.minimum(approved, total_fen[rows])}


def _hospitals(profile: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isin(profile, ["general_tertiary", "general_secondary", "tcm_hospital", "general_private"]))


def _itemized_claims(rng, year, inst_codes, profile, patient_ids, patient_employee, cases):
    n_patients = len(patient_ids)
    n_claims = max(3, int(round(cases * 0.03)))
    hospitals = _hospitals(profile)
    weights = np.where(profile[hospitals] == "general_tertiary", 4.0, 1.0)
    where = hospitals[rng.choice(len(hospitals), size=n_claims, p=weights / weights.sum())]
    patient = rng.integers(0, n_patients, size=n_claims)
    employee = patient_employee[patient]
    fen = np.round(rng.lognormal(np.log(2200.0), 0.7, n_claims) * 100).astype(np.int64)
    month = rng.integers(1, 13, size=n_claims)
    itemized = {"employee": int(fen[employee].sum()), "resident": int(fen[~employee].sum())}
    frame = pd.DataFrame({
        "claim_no": [f"T{year}{i:07d}" for i in range(1, n_claims + 1)],
        "institution_code": inst_codes[where],
        "fund": np.where(employee, "employee", "resident"),
        "month": [f"{year}-{m:02d}" for m in month.tolist()],
        "patient_id": patient_ids[patient],
        "approved_amount": _money_str(fen),
    })
    return frame, itemized


def _point_adjustments(rng, inst_codes, inst_all, group_all, fund, cat, profile) -> pd.DataFrame:
    targets = _hospitals(profile)
    rows = []
    seen = set()
    stable = cat.kind[group_all] == "stable"
    for i in targets.tolist():
        mine = np.flatnonzero((inst_all == i) & stable)
        if not len(mine):
            continue
        for _ in range(int(rng.integers(1, 4))):
            pick = int(mine[rng.integers(0, len(mine))])
            multiple = int(rng.choice([1, 1, 1, 2, 2, 3, 5]))
            key = (inst_codes[i], fund[pick], cat.codes[group_all[pick]], ADJUSTMENT_REASONS[multiple])
            if key in seen:
                continue
            seen.add(key)
            rows.append({"institution_code": key[0], "fund": key[1], "drg_code": key[2], "multiple": str(multiple), "reason": key[3]})
    return pd.DataFrame(rows, columns=["institution_code", "fund", "drg_code", "multiple", "reason"])


def _evaluations(rng, inst_codes, inst_all, fund) -> pd.DataFrame:
    pairs = pd.DataFrame({"i": inst_all, "fund": fund}).drop_duplicates().sort_values(["i", "fund"])
    score = np.clip(np.round(rng.normal(93.0, 4.0, len(pairs))), 70, 100).astype(int)
    return pd.DataFrame({
        "institution_code": inst_codes[pairs["i"].to_numpy()],
        "fund": pairs["fund"].to_numpy(),
        "score": score.astype(str),
    })


def _chronic(rng, year, inst_codes, profile, patient_ids, cases) -> pd.DataFrame:
    n_patients = len(patient_ids)
    n = max(5, int(round(cases * 0.04)))
    primary = np.flatnonzero(profile == "primary")
    hospitals = _hospitals(profile)
    where = np.where(rng.random(n) < 0.85, primary[rng.integers(0, len(primary), n)], hospitals[rng.integers(0, len(hospitals), n)])
    patient = rng.integers(0, n_patients, size=n)
    disease = np.array(CHRONIC_DISEASES)[rng.choice(len(CHRONIC_DISEASES), size=n, p=[0.45, 0.30, 0.10, 0.10, 0.05])]
    # a third were first enrolled in earlier years (not new in this year)
    start = np.where(rng.random(n) < 0.33, np.datetime64(f"{year - 3}-01-01"), np.datetime64(f"{year}-01-01"))
    span = np.where(start == np.datetime64(f"{year}-01-01"), 365, 3 * 365)
    enrolled = start + (rng.random(n) * span).astype(np.int64)
    frame = pd.DataFrame({
        "institution_code": inst_codes[where],
        "patient_id": patient_ids[patient],
        "disease": disease,
        "enrolled_on": _dates_str(enrolled),
    })
    return frame.drop_duplicates(["institution_code", "patient_id", "disease"]).reset_index(drop=True)


def _tcm_workload(rng, year, inst_codes, category, profile) -> pd.DataFrame:
    who = np.flatnonzero((category == "tcm") | (profile == "primary") | (profile == "general_tertiary"))
    rows = []
    for i in who.tolist():
        scale = {"tcm": 3500.0, "general": 600.0}.get(category[i], 250.0)
        counts = np.round(scale * SEASONALITY * rng.lognormal(0.0, 0.15, 12)).astype(int)
        for m, c in enumerate(counts.tolist(), start=1):
            rows.append({"institution_code": inst_codes[i], "month": f"{year}-{m:02d}", "prescriptions": str(c)})
    return pd.DataFrame(rows, columns=["institution_code", "month", "prescriptions"])


def _hospice(rng, year, inst_codes, profile, patient_ids) -> pd.DataFrame:
    n_patients = len(patient_ids)
    providers = np.concatenate([np.flatnonzero(profile == "general_secondary"), np.flatnonzero(profile == "primary")[:4]])
    rows = []
    seen = set()
    for i in providers.tolist():
        rows.append({"institution_code": inst_codes[i], "kind": "bed", "patient_id": "",
                     "service_date": f"{year}-{int(rng.integers(1, 7)):02d}-01", "quantity": str(int(rng.integers(2, 7)))})
        for kind, n in (("inpatient", int(rng.integers(8, 30))), ("home", int(rng.integers(5, 25)))):
            patients = rng.integers(0, n_patients, size=n // 2 + 1)
            for _ in range(n):
                p = int(patients[rng.integers(0, len(patients))])
                day = np.datetime64(f"{year}-01-01") + int(rng.integers(0, 365))
                key = (inst_codes[i], kind, p, str(day))
                if key in seen:
                    continue
                seen.add(key)
                rows.append({"institution_code": key[0], "kind": kind, "patient_id": patient_ids[p], "service_date": key[3], "quantity": "1"})
    return pd.DataFrame(rows, columns=["institution_code", "kind", "patient_id", "service_date", "quantity"])


def _screenings(rng, year, inst_codes, profile, patient_ids, cases) -> pd.DataFrame:
    n_patients = len(patient_ids)
    n = max(5, int(round(cases * 0.01)))
    who = np.flatnonzero(np.isin(profile, ["primary", "general_tertiary", "general_secondary", "tcm_hospital"]))
    where = who[rng.integers(0, len(who), n)]
    day = np.datetime64(f"{year}-01-01") + rng.integers(0, 365, n)
    fee = np.round(rng.choice([300.0, 600.0, 850.0, 1250.0], size=n) * 100).astype(np.int64)
    frame = pd.DataFrame({
        "institution_code": inst_codes[where],
        "patient_id": patient_ids[rng.integers(0, n_patients, n)],
        "screening_date": _dates_str(day),
        "fee": _money_str(fee),
        "high_risk": _digits(rng.random(n) < 0.3),
    })
    return frame.drop_duplicates(["institution_code", "patient_id", "screening_date"]).reset_index(drop=True)


# --- writing ------------------------------------------------------------------------------------------

def write_bundle(*, params: dict, frames: dict[str, pd.DataFrame], out: Path) -> dict[str, int]:
    """Write params.json and the CSV files (UTF-8, no BOM, '\\n' line ends); returns rows per file."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.json").write_text(json.dumps(params, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    rows = {}
    for name, frame in frames.items():
        if len(frame) > 50_000:
            _write_plain_csv(out / name, frame)
        else:
            frame.to_csv(out / name, index=False, lineterminator="\n", encoding="utf-8")
        rows[name] = len(frame)
    return rows


def _write_plain_csv(path: Path, frame: pd.DataFrame) -> None:
    """Fast CSV writer for the large generated files. Their fields never need quoting: numbers,
    dates, enumerations and codes (fixture codes are checked in load_fixtures)."""
    columns = [frame[column].astype(object).to_numpy() for column in frame.columns]
    lines = map(",".join, zip(*(values.tolist() for values in columns)))
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(frame.columns) + "\n")
        while chunk := list(islice(lines, 200_000)):
            handle.write("\n".join(chunk) + "\n")


def planted_path(out: Path) -> Path:
    """Where the ground truth of planted patterns goes: beside the bundle, not in it."""
    out = Path(out).resolve()
    return out.with_name(out.name + ".planted.csv")


def generate_bundle(
    *, out: Path, cases: int, seed: int = 2025, year: int = 2025, region: str | None = None,
    fixtures: Fixtures | None = None, progress: Progress | None = None, employee_share: float = EMPLOYEE_SHARE,
    plant: dict[str, str] | str | None = None,
) -> BundleSummary:
    """Generate a complete bundle into `out` (created if missing; existing bundle files are overwritten).

    `plant`: {institution code: pattern} (exchange/planting.py), or "demo" for one pattern each at
    the five largest institutions; the ground truth is written to `planted_path(out)`."""
    from exchange.planting import default_plan, plant_patterns

    started = time.perf_counter()
    params, frames, stats = generate_frames(cases=cases, seed=seed, year=year, region=region, fixtures=fixtures,
                                            progress=progress, employee_share=employee_share)
    truth_path = None
    if plant:
        if progress:
            progress("planting patterns")
        plan = default_plan(frames) if plant == "demo" else dict(plant)
        frames, truth = plant_patterns(frames=frames, plan=plan, seed=seed, year=year)
        truth_path = planted_path(out)
        truth_path.parent.mkdir(parents=True, exist_ok=True)
        truth.to_csv(truth_path, index=False, lineterminator="\n", encoding="utf-8")
    if progress:
        progress("writing files")
    rows = write_bundle(params=params, frames=frames, out=Path(out))
    return BundleSummary(
        path=Path(out), region=params["region"]["code"], year=year, seed=seed, rows=rows,
        budgets=params["budgets"],
        fund_claims={k: f"{stats[f'fund_claims_{k}']:.2f}" for k in ("employee", "resident")},
        seconds=time.perf_counter() - started, stats=stats, planted=truth_path,
    )
