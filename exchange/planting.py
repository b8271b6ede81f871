"""Planted monitoring patterns for the synthetic region (MONITORING.md §2): chosen institutions get
upcoding, split stays, low-standard admissions, cost shifting or patient selection; the ground truth
is returned for a file beside the bundle.

Pure (numpy, pandas) and seeded from its own stream, so a bundle without planted patterns is the
generator's unchanged output. With any pattern planted, the background is first made clean for all
five screens, so that the ground truth is exact at the spec's default parameters; for each rule,
every institution not planted with it is made clean of it:
- their severity-1 cases (ADRG groups ending in 1) are coded one severity lower (the
  ADRG's highest-numbered sibling): severity 1 appears only where it is planted;
- their patients are numbered per stay, except the readmissions the generator makes on
  purpose (same institution and group, 0–15 days: halved by the payment rule, so no split stay);
- their stable stays of ≤ 2 bed days and r ≤ 0.4 with a normal discharge get 3 bed days;
- their transfers are recorded as discharges against advice (the same category).
"""
from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

PATTERNS = ("upcoding", "split_stay", "low_standard_admission", "cost_shifting", "patient_selection")
TRUTH_COLUMNS = ["institution_code", "rule", "cases"]
SEED_OFFSET = 7919

UPCODE_SHARE = 0.6
SPLIT_SHARE = 0.10
LOW_STANDARD_SHARE = 0.12
SELF_PAY_EXTRA = 0.15
TRANSFER_SHARE = 0.15


def default_plan(frames: dict[str, pd.DataFrame]) -> dict[str, str]:
    """One pattern each for the five institutions with the most cases (the largest upcodes: the
    ADRG screen needs ≥ 20 cases of an ADRG in a pool)."""
    counts = frames["cases.csv"]["institution_code"].value_counts()
    ranked = sorted(counts.index, key=lambda code: (-int(counts[code]), code))
    return dict(zip(ranked, PATTERNS))


def parse_plan(text: str) -> dict[str, str]:
    """"upcoding=H1,split_stay=H2" -> {"H1": "upcoding", "H2": "split_stay"} (one pattern per institution)."""
    plan: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        rule, _, code = part.partition("=")
        rule, code = rule.strip(), code.strip()
        if rule not in PATTERNS or not code:
            raise ValueError(f"bad --plant item {part!r}: write pattern=INSTITUTION with a pattern of {', '.join(PATTERNS)}")
        if code in plan:
            raise ValueError(f"institution {code} is given two patterns")
        plan[code] = rule
    return plan


def _fen(values: pd.Series) -> np.ndarray:
    return np.array([int(Decimal(v) * 100) for v in values], dtype=np.int64)


def _money(fen: np.ndarray) -> np.ndarray:
    fen = np.asarray(fen, dtype=np.int64)
    return np.array([f"{v // 100}.{v % 100:02d}" for v in fen], dtype=object)


def _dates(values: pd.Series) -> np.ndarray:
    return pd.to_datetime(values, format="%Y-%m-%d").to_numpy("datetime64[D]")


def _date_text(days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(np.asarray(days, dtype="datetime64[D]"), unit="D").astype(object)


def _adrg_maps(groups: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    """severity-1 code -> its lowest-severity stable sibling; ADRG -> its severity-1 code (where it
    has a stable sibling too)."""
    kinds = dict(zip(groups["code"], groups["kind"]))
    by_adrg: dict[str, list[str]] = {}
    for code in groups["code"]:
        if len(code) == 4 and code[3].isdigit():
            by_adrg.setdefault(code[:3], []).append(code)
    down, up = {}, {}
    for adrg, codes in by_adrg.items():
        severe = [c for c in codes if c[3] == "1"]
        others = sorted(c for c in codes if c[3] != "1")
        if severe and others:
            down[severe[0]] = others[-1]
            if kinds[severe[0]] == "stable" and any(kinds[c] == "stable" for c in others):
                up[adrg] = severe[0]
    return down, up


def _pick(rng, candidates: np.ndarray, fund: np.ndarray, share: float, at_least: int) -> np.ndarray:
    """A share of the candidate rows, at least `at_least` per fund (where there are that many)."""
    chosen = np.zeros(len(candidates), dtype=bool)
    for name in np.unique(fund[candidates]):
        rows = np.flatnonzero(candidates & (fund == name))
        size = min(len(rows), max(at_least, int(np.ceil(len(rows) * share))))
        chosen[rng.choice(rows, size=size, replace=False)] = True
    return chosen


def plant_patterns(*, frames: dict[str, pd.DataFrame], plan: dict[str, str], seed: int, year: int) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Return (frames with cases.csv changed, ground truth rows institution_code, rule, cases)."""
    if not plan:
        return frames, pd.DataFrame(columns=TRUTH_COLUMNS)
    unknown = sorted(set(plan.values()) - set(PATTERNS))
    if unknown:
        raise ValueError(f"unknown pattern(s) {', '.join(unknown)}; choose from {', '.join(PATTERNS)}")
    codes = set(frames["institutions.csv"]["code"])
    missing = sorted(set(plan) - codes)
    if missing:
        raise ValueError(f"unknown institution(s) {', '.join(missing)}")
    rng = np.random.default_rng(seed + SEED_OFFSET)
    cases = frames["cases.csv"].copy().reset_index(drop=True)
    groups = frames["drg_groups.csv"].set_index("code")
    equivalents = dict(zip(frames["tcm_equivalents.csv"]["drg_code"], frames["tcm_equivalents.csv"]["equivalent_code"]))
    down, up = _adrg_maps(frames["drg_groups.csv"])

    inst = cases["institution_code"].to_numpy(object)
    planted_rule = pd.Series(inst).map(plan).fillna("").to_numpy(object)

    def clean(rule: str) -> np.ndarray:
        return planted_rule != rule
    drg = cases["drg_code"].to_numpy(object).copy()
    tcm = cases["tcm_treatment"].to_numpy(object) == "1"
    mapped = np.array([t and d in equivalents for t, d in zip(tcm, drg)], dtype=bool)
    valuation = np.where(mapped, pd.Series(drg).map(equivalents).to_numpy(object), drg)
    kind = pd.Series(valuation).map(groups["kind"]).to_numpy(object)
    stable = kind == "stable"
    exempt = pd.Series(valuation).map(groups["readmission_exempt"]).to_numpy(object) == "1"
    avg_fen = np.array([int(Decimal(v) * 100) if isinstance(v, str) and v else 0 for v in pd.Series(valuation).map(groups["avg_cost"])], dtype=np.int64)
    total = _fen(cases["total_cost"])
    self_pay = _fen(cases["self_pay"])
    admission = _dates(cases["admission_date"])
    discharge = _dates(cases["discharge_date"])
    status = cases["discharge_status"].to_numpy(object).copy()
    patient = cases["patient_id"].to_numpy(object).copy()
    case_no = cases["case_no"].to_numpy(object)
    fund = cases["fund"].to_numpy(object)
    in_year = (discharge >= np.datetime64(f"{year}-01-01")) & (discharge <= np.datetime64(f"{year}-12-31"))

    # --- the clean background ---------------------------------------------------------------------
    lower = pd.Series(valuation).map(down).to_numpy(object)
    recode = clean("upcoding") & pd.notna(lower)
    drg[recode] = lower[recode]  # (a TCM equivalent is never of severity 1)
    bed = np.maximum(1, (discharge - admission).astype(np.int64))
    low_std = clean("low_standard_admission") & stable & (bed <= 2) & (total * 10 <= 4 * avg_fen) & (status == "normal")
    admission = np.where(low_std, discharge - np.timedelta64(3, "D"), admission)
    status[clean("patient_selection") & (status == "transfer")] = "against_advice"
    order = np.lexsort((case_no, inst, discharge, admission, patient))
    keep = np.zeros(len(cases), dtype=bool)
    a, b = order[:-1], order[1:]
    gap = (admission[b] - discharge[a]).astype(np.int64)
    purposeful = (patient[a] == patient[b]) & (inst[a] == inst[b]) & (drg[a] == drg[b]) & (gap >= 0) & (gap <= 15) & ~exempt[a]
    keep[a[purposeful]] = True
    keep[b[purposeful]] = True
    own_id = clean("split_stay") & ~keep
    patient[own_id] = patient[own_id] + "-" + case_no[own_id]

    # --- the planted patterns ---------------------------------------------------------------------
    truth = []
    added = []
    for code in sorted(plan):
        rule = plan[code]
        mine = (inst == code) & in_year
        if rule == "upcoding":
            target = pd.Series(valuation).map(lambda g: up.get(g[:3]) if isinstance(g, str) and len(g) == 4 else None).to_numpy(object)
            pick = mine & stable & ~mapped & pd.notna(target) & (rng.random(len(cases)) < UPCODE_SHARE)
            drg[pick] = target[pick]
            truth.append((code, rule, int(pick.sum())))
        elif rule == "split_stay":
            eligible = mine & stable & ~exempt & (status == "normal") & (discharge <= np.datetime64(f"{year}-12-10"))
            first = np.flatnonzero(_pick(rng, eligible, fund, SPLIT_SHARE, 4))
            other_groups = sorted(set(valuation[mine & stable & ~exempt & ~mapped]))
            for k, i in enumerate(first):
                choices = [g for g in other_groups if g != valuation[i]] or other_groups
                group = choices[int(rng.integers(0, len(choices)))]
                start = discharge[i] + np.timedelta64(int(rng.integers(1, 8)), "D")
                end = start + np.timedelta64(int(rng.integers(2, 7)), "D")
                cost = max(100, int(total[i] * 0.6))
                added.append({
                    "case_no": f"S{year}{k + 1:06d}", "institution_code": code, "fund": fund[i], "patient_id": patient[i],
                    "admission_date": str(start), "discharge_date": str(end), "drg_code": group,
                    "total_cost": _money([cost])[0], "self_pay": _money([min(cost, int(cost * self_pay[i] / max(total[i], 1)))])[0],
                    "discharge_status": "normal", "tcm_treatment": "0", "tcm_cost": "0.00", "surgery_grade": "0", "malignant_tumor_surgery": "0",
                })
            truth.append((code, rule, len(first)))
        elif rule == "low_standard_admission":
            pick = _pick(rng, mine & stable & ~mapped & (status == "normal") & (avg_fen > 0), fund, LOW_STANDARD_SHARE, 7)
            factor = rng.uniform(0.15, 0.35, len(cases))
            new_total = np.maximum(100, (avg_fen * factor).astype(np.int64))
            self_pay = np.where(pick, (new_total * self_pay / np.maximum(total, 1)).astype(np.int64), self_pay)
            total = np.where(pick, new_total, total)
            los = rng.integers(1, 3, len(cases))
            admission = np.where(pick, discharge - los.astype("timedelta64[D]"), admission)
            truth.append((code, rule, int(pick.sum())))
        elif rule == "cost_shifting":
            self_pay = np.where(mine, np.minimum(total, self_pay + (total * SELF_PAY_EXTRA).astype(np.int64)), self_pay)
            truth.append((code, rule, int(mine.sum())))
        elif rule == "patient_selection":
            pick = _pick(rng, mine & (status == "normal"), fund, TRANSFER_SHARE, 7)
            status[pick] = "transfer"
            truth.append((code, rule, int(pick.sum())))

    cases["drg_code"] = drg
    cases["patient_id"] = patient
    cases["admission_date"] = _date_text(admission)
    cases["discharge_status"] = status
    cases["total_cost"] = _money(total)
    cases["self_pay"] = _money(self_pay)
    tcm_fen = np.minimum(_fen(cases["tcm_cost"]), total)
    cases["tcm_cost"] = _money(tcm_fen)
    if added:
        extra = pd.DataFrame(added, columns=list(cases.columns)).astype(object)
        cases = pd.concat([cases, extra], ignore_index=True)
    out = dict(frames)
    out["cases.csv"] = cases
    return out, pd.DataFrame(truth, columns=TRUTH_COLUMNS)
