"""The three-layer settlement of special-outpatient claims (BENEFITS.md), exact in integer fen.

Per patient and fund-year the claims are settled in (service_date, claim_no) order; the patient's
inpatient fund shares of the year count against the shared cap on their discharge dates, before any
claim of the same or a later date.

Two implementations that must agree to the fen:

- :func:`settle_patient_year` — the reference: one patient-fund-year, a plain loop in exact
  integers (used at the counter, where a patient's year is re-settled as a whole);
- :func:`settle_frame` — the bulk path: a whole region-year at once in numpy int64 fen. Deductible,
  disease caps, burden, critical-illness and assistance are cumulative sums per group; only the
  patient-years where the shared annual cap binds (and any value too large for int64) are handed
  to the reference loop.

Amounts are integer fen; ratios carry at most 6 decimals (scale 10**6); the critical threshold is
exact (fen × 10**6 units). r2 (half-up to the fen) only where the spec says.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from benefits.domain.parameters import BenefitTerms
from common.units_text import units_text_array

SCALE = 10**6  # ratio units
HALF = SCALE // 2
INT64_SAFE = 2**62


def ratio_units(value: Decimal) -> int:
    units = value * SCALE
    if units != units.to_integral_value():
        raise ValueError(f"ratio {value} has more than 6 decimals")
    return int(units)


def _r2_units(numerator: int, scale: int) -> int:
    """round_half_up(numerator / scale) for numerator ≥ 0 (fen)."""
    return (numerator + scale // 2) // scale


@dataclass(frozen=True)
class ClaimIn:
    claim_no: str
    institution_code: str
    service_date: date
    disease_code: str
    level: int
    total: int  # fen
    eligible: int  # fen
    key: object = None


@dataclass(frozen=True)
class StayIn:
    discharge_date: date
    share: int  # fen: total_cost − self_pay


@dataclass(frozen=True)
class ClaimSplit:
    """A settled claim: the four parts (fen) and its explanation."""

    key: object
    claim_no: str
    institution_code: str
    basic: int
    critical: int
    assistance: int
    patient: int
    ratio: Decimal
    deductible: int  # deductible used by this claim
    base: int  # r2((eligible − deductible) × ratio), before the caps
    cap_left: int  # shared annual cap left before this claim (inpatient shares and earlier basic counted)
    disease_cap_left: int  # the disease's cap left before this claim
    burden: int  # year-to-date Σ (eligible − basic), this claim included
    threshold: Fraction  # yuan
    critical_ratio: Decimal
    assistance_ratio: Decimal | None  # None: the whole remainder (destitute)

    def explanation(self) -> dict:
        return {
            "ratio": str(self.ratio),
            "deductible": _yuan(self.deductible),
            "base": _yuan(self.base),
            "cap_left_before": _yuan(self.cap_left),
            "disease_cap_left_before": _yuan(self.disease_cap_left),
            "burden_to_date": _yuan(self.burden),
            # keyed by the ratios' text: Decimal("0.50") == Decimal("0.500000") with one hash, so a cache
            # keyed by the values would answer one with the other's digits
            **_constant_terms(self.threshold, str(self.critical_ratio), None if self.assistance_ratio is None else str(self.assistance_ratio)),
        }


@lru_cache(maxsize=256)
def _constant_terms(threshold: Fraction, critical_ratio: str, assistance_ratio: str | None) -> dict:
    """The explanation's parts that are the same for every claim of a patient-year (computed once)."""
    return {
        "critical_threshold": _fraction_text(threshold),
        "critical_ratio": critical_ratio,
        "assistance_ratio": "full" if assistance_ratio is None else assistance_ratio,
    }


def _yuan(fen: int) -> str:
    """Integer fen as a 2-decimal yuan string ('-1.05' for -105)."""
    fen = int(fen)
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{whole}.{cents:02d}"


_EXPLAINED_FEN = (("deductible", "deductible"), ("base", "base"), ("cap_left_before", "cap_left"),
                  ("disease_cap_left_before", "disease_cap_left"), ("burden_to_date", "burden"))


def explanation_texts(frame: pd.DataFrame, terms: Mapping[str, BenefitTerms]) -> pa.Array:
    """The explanations of claims settled by :func:`settle_frame`, as an Arrow array of JSON text
    (what COPY takes without a Python string per claim), column by column:
    for each row the same object :func:`explanation_of` builds (a million rows in about a second,
    where building the objects one by one takes half a minute). ``frame``: fund, level, category
    and the RESULT_COLUMNS of settle_frame."""
    fund_code, funds = pd.factorize(frame["fund"].to_numpy(dtype=object))
    level = frame["level"].to_numpy(dtype="int64")
    category_code, categories = pd.factorize(frame["category"].to_numpy(dtype=object))
    heads: list[str] = []  # '{"ratio": "0.9", ' per (fund, level)
    tails: list[str] = []  # the constant terms per (fund, category), closing the object
    head_code = np.zeros(len(frame), dtype="int64")
    tail_code = np.zeros(len(frame), dtype="int64")
    for f, fund_name in enumerate(funds.tolist()):
        fund_terms = terms[fund_name]
        in_fund = fund_code == f
        for lvl in np.unique(level[in_fund]).tolist():
            head_code[in_fund & (level == lvl)] = len(heads)
            heads.append(f'{{"ratio": {json.dumps(str(fund_terms.ratio(lvl)))}, ')
        for c in np.unique(category_code[in_fund]).tolist():
            cat = categories[c]
            aratio = fund_terms.assistance_ratio_for(cat)
            constant = _constant_terms(fund_terms.threshold(cat), str(fund_terms.critical_ratio_for(cat)),
                                       None if aratio is None else str(aratio))
            tail_code[in_fund & (category_code == c)] = len(tails)
            tails.append(json.dumps(constant, ensure_ascii=False)[1:])
    parts = [pc.take(pa.array(heads or [""], pa.string()), pa.array(head_code))]
    for key, column in _EXPLAINED_FEN:
        parts += [f'"{key}": "', units_text_array(frame[column].to_numpy(), 2), '", ']
    parts.append(pc.take(pa.array(tails or [""], pa.string()), pa.array(tail_code)))
    return pc.binary_join_element_wise(*parts, "")


def _fraction_text(value: Fraction) -> str:
    if (value * 100).denominator == 1:
        return _yuan(int(value * 100))
    return str(Decimal(value.numerator) / Decimal(value.denominator))


def claim_order_key(claim: ClaimIn) -> tuple:
    """(service_date, claim_no as a string, institution_code): the spec's order, ties of equal
    claim_no at two institutions broken by institution code."""
    return (claim.service_date, claim.claim_no, claim.institution_code)


def settle_patient_year(
    *,
    claims: Sequence[ClaimIn],
    stays: Iterable[StayIn],
    category: str,
    terms: BenefitTerms,
    disease_caps: Mapping[str, int],
) -> list[ClaimSplit]:
    """Settle one patient's claims of one fund-year (the reference implementation)."""
    ordered = sorted(claims, key=claim_order_key)
    stay_list = sorted(stays, key=lambda s: s.discharge_date)
    deductible_total = int(terms.deductible * 100)
    cap = int(terms.shared_annual_cap * 100)
    threshold = terms.threshold(category)
    threshold_units = threshold * 100 * SCALE  # fen × 10**6
    if threshold_units.denominator != 1:
        raise ValueError("critical threshold finer than 10**-6 fen")
    threshold_units = int(threshold_units)
    cratio = terms.critical_ratio_for(category)
    cratio_u = ratio_units(cratio)
    aratio = terms.assistance_ratio_for(category)
    aratio_u = None if aratio is None else ratio_units(aratio)

    used_shared = 0
    used_deductible = 0
    disease_used: dict[str, int] = {}
    burden = 0
    critical_paid = 0
    stay_index = 0
    ratio_of = {level: (terms.ratio(level), ratio_units(terms.ratio(level))) for level in {c.level for c in ordered}}
    out: list[ClaimSplit] = []
    for claim in ordered:
        while stay_index < len(stay_list) and stay_list[stay_index].discharge_date <= claim.service_date:
            used_shared += stay_list[stay_index].share
            stay_index += 1
        ratio, ratio_u = ratio_of[claim.level]
        deductible = min(claim.eligible, deductible_total - used_deductible)
        used_deductible += deductible
        base = _r2_units((claim.eligible - deductible) * ratio_u, SCALE)
        cap_left = cap - used_shared
        disease_left = disease_caps[claim.disease_code] - disease_used.get(claim.disease_code, 0)
        basic = max(0, min(base, cap_left, disease_left))
        used_shared += basic
        disease_used[claim.disease_code] = disease_used.get(claim.disease_code, 0) + basic
        burden += claim.eligible - basic
        excess = max(0, burden * SCALE - threshold_units)
        critical_total = _r2_units(excess * cratio_u, SCALE * SCALE)
        critical = critical_total - critical_paid
        critical_paid = critical_total
        left = claim.eligible - basic - critical
        if aratio_u is None:
            assistance = left
        else:
            assistance = _r2_units(left * aratio_u, SCALE)
        patient = claim.total - basic - critical - assistance
        out.append(ClaimSplit(
            key=claim.key, claim_no=claim.claim_no, institution_code=claim.institution_code,
            basic=basic, critical=critical, assistance=assistance, patient=patient,
            ratio=ratio, deductible=deductible, base=base, cap_left=max(0, cap_left),
            disease_cap_left=max(0, disease_left), burden=burden, threshold=threshold,
            critical_ratio=cratio, assistance_ratio=aratio,
        ))
    return out


# --- bulk ----------------------------------------------------------------------------------------

CLAIM_COLUMNS = ("patient_id", "fund", "category", "claim_no", "institution_code", "service_date",
                 "disease_code", "level", "total", "eligible")
STAY_COLUMNS = ("patient_id", "fund", "discharge_date", "share")
RESULT_COLUMNS = ("basic", "critical", "assistance", "patient", "deductible", "base", "cap_left",
                  "disease_cap_left", "burden")


def _group_starts(group: np.ndarray) -> np.ndarray:
    """Boolean mask: first row of each run of equal values (rows sorted by group)."""
    starts = np.ones(len(group), dtype=bool)
    if len(group) > 1:
        starts[1:] = group[1:] != group[:-1]
    return starts


def _group_cumsum(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum restarting at each group (rows sorted by group)."""
    total = np.cumsum(values)
    if len(values) == 0:
        return total
    starts = _group_starts(group)
    start_index = np.maximum.accumulate(np.where(starts, np.arange(len(values)), 0))
    before = total - values
    return total - before[start_index]


def _mul_round(a: np.ndarray, units: np.ndarray, scale: int) -> np.ndarray:
    """round_half_up(a × units / scale) for a, units ≥ 0, in int64 when it cannot overflow."""
    if len(a) == 0:
        return a.astype("int64")
    if int(a.max(initial=0)) * int(units.max(initial=0)) + scale < INT64_SAFE:
        return (a * units + scale // 2) // scale
    big = (a.astype(object) * units.astype(object) + scale // 2) // scale
    return big.astype(object)


def settle_frame(
    claims: pd.DataFrame,
    stays: pd.DataFrame,
    *,
    terms: Mapping[str, BenefitTerms],
    disease_caps: Mapping[str, int],
) -> pd.DataFrame:
    """Settle every claim of one region-year.

    ``claims``: CLAIM_COLUMNS (amounts as int fen, service_date datetime64 or date, level 1-3,
    category one of the five); ``stays``: STAY_COLUMNS of the same year (share in int fen).
    ``terms`` per fund; ``disease_caps`` in fen per disease code. Every claim must be valid (known
    disease, level and fund; eligible ≤ total). Returns the claims' index with RESULT_COLUMNS (int fen)."""
    n = len(claims)
    result = pd.DataFrame({c: np.zeros(n, dtype="int64") for c in RESULT_COLUMNS}, index=claims.index)
    if n == 0:
        return result
    patients_all = pd.concat([claims["patient_id"].astype(str), stays["patient_id"].astype(str)], ignore_index=True)
    patient_codes, _ = pd.factorize(patients_all)
    fund_codes_all = pd.concat([claims["fund"], stays["fund"]], ignore_index=True).map({"employee": 0, "resident": 1}).to_numpy()
    group_all = patient_codes.astype("int64") * 2 + fund_codes_all.astype("int64")
    claim_group = group_all[:n]
    stay_group = group_all[n:]

    claim_day = pd.to_datetime(claims["service_date"]).to_numpy().astype("datetime64[D]").astype("int64")
    stay_day = pd.to_datetime(stays["discharge_date"]).to_numpy().astype("datetime64[D]").astype("int64") if len(stays) else np.zeros(0, "int64")
    # claim_no (then institution) as strings: a rank to sort on
    order_text = claims["claim_no"].astype(str).to_numpy(dtype=str)
    inst_text = claims["institution_code"].astype(str).to_numpy(dtype=str)
    text_order = np.lexsort((inst_text, order_text))
    text_rank = np.empty(n, dtype="int64")
    text_rank[text_order] = np.arange(n)

    # inpatient shares to date: stays (kind 0) before claims (kind 1) of the same date
    m = len(stays)
    ev_group = np.concatenate([stay_group, claim_group])
    ev_day = np.concatenate([stay_day, claim_day])
    ev_kind = np.concatenate([np.zeros(m, "int64"), np.ones(n, "int64")])
    ev_rank = np.concatenate([np.zeros(m, "int64"), text_rank])
    ev_share = np.concatenate([stays["share"].to_numpy(dtype="int64") if m else np.zeros(0, "int64"), np.zeros(n, "int64")])
    ev_row = np.concatenate([np.full(m, -1, "int64"), np.arange(n, dtype="int64")])
    ev_order = np.lexsort((ev_rank, ev_kind, ev_day, ev_group))
    inp_cum = _group_cumsum(ev_share[ev_order], ev_group[ev_order])
    is_claim = ev_kind[ev_order] == 1
    order = ev_row[ev_order][is_claim]  # claim rows in settlement order
    inpatient = inp_cum[is_claim]

    group = claim_group[order]
    fund = claims["fund"].to_numpy()[order]
    category = claims["category"].to_numpy()[order]
    level = claims["level"].to_numpy(dtype="int64")[order]
    disease = claims["disease_code"].astype(str).to_numpy()[order]
    total = claims["total"].to_numpy(dtype="int64")[order]
    eligible = claims["eligible"].to_numpy(dtype="int64")[order]

    ratio_u = np.zeros(n, "int64")
    deductible_total = np.zeros(n, "int64")
    cap = np.zeros(n, "int64")
    threshold_u = np.zeros(n, "int64")
    cratio_u = np.zeros(n, "int64")
    aratio_u = np.zeros(n, "int64")
    full_assist = np.zeros(n, dtype=bool)
    for fund_name, t in terms.items():
        in_fund = fund == fund_name
        if not in_fund.any():
            continue
        for lvl in (1, 2, 3):
            ratio_u[in_fund & (level == lvl)] = ratio_units(t.ratio(lvl))
        deductible_total[in_fund] = int(t.deductible * 100)
        cap[in_fund] = int(t.shared_annual_cap * 100)
        for cat in ("ordinary", "poor", "subsistence", "destitute", "birth_defect"):
            rows = in_fund & (category == cat)
            if not rows.any():
                continue
            thr = t.threshold(cat) * 100 * SCALE
            threshold_u[rows] = int(thr)
            cratio_u[rows] = ratio_units(t.critical_ratio_for(cat))
            a = t.assistance_ratio_for(cat)
            if a is None:
                full_assist[rows] = True
            else:
                aratio_u[rows] = ratio_units(a)
    disease_cap = pd.Series(disease).map(dict(disease_caps)).to_numpy(dtype="int64")

    # layer 1 without the shared cap: deductible, base, disease caps (cumulative sums)
    cum_eligible = _group_cumsum(eligible, group)
    used_after = np.minimum(cum_eligible, deductible_total)
    used_before = np.minimum(cum_eligible - eligible, deductible_total)
    deductible = used_after - used_before
    base = _mul_round(eligible - deductible, ratio_u, SCALE)
    if base.dtype == object:
        return _settle_by_reference(claims, stays, result, terms=terms, disease_caps=disease_caps)

    disease_key = pd.factorize(disease)[0].astype("int64")
    by_disease = np.lexsort((np.arange(n), disease_key, group))  # stable within (group, disease)
    gd = group[by_disease] * (disease_key.max() + 1) + disease_key[by_disease]
    cum_base = _group_cumsum(base[by_disease], gd)
    dcap = disease_cap[by_disease]
    basic_sorted = np.minimum(cum_base, dcap) - np.minimum(cum_base - base[by_disease], dcap)
    disease_left_sorted = np.maximum(0, dcap - np.minimum(cum_base - base[by_disease], dcap))
    basic = np.empty(n, "int64")
    basic[by_disease] = basic_sorted
    disease_left = np.empty(n, "int64")
    disease_left[by_disease] = disease_left_sorted

    # the shared annual cap: patient-years where it binds go to the reference loop
    cum_basic = _group_cumsum(basic, group)
    over = inpatient + cum_basic > cap
    bound_groups = np.unique(group[over])
    cap_left = np.maximum(0, cap - inpatient - (cum_basic - basic))

    # layers 2 and 3
    burden = _group_cumsum(eligible - basic, group)
    excess = np.maximum(0, burden * SCALE - threshold_u) if int(burden.max(initial=0)) * SCALE < INT64_SAFE else None
    if excess is None:
        return _settle_by_reference(claims, stays, result, terms=terms, disease_caps=disease_caps)
    critical_total = _mul_round(excess, cratio_u, SCALE * SCALE)
    if critical_total.dtype == object:
        critical_total = critical_total.astype("int64")  # ≤ burden, which fits
    starts = _group_starts(group)
    previous = np.concatenate([[0], critical_total[:-1]])
    previous[starts] = 0
    critical = critical_total - previous
    left = eligible - basic - critical
    assistance = np.where(full_assist, left, _mul_round(left, aratio_u, SCALE).astype("int64"))
    patient = total - basic - critical - assistance

    values = {"basic": basic, "critical": critical, "assistance": assistance, "patient": patient,
              "deductible": deductible, "base": base, "cap_left": cap_left,
              "disease_cap_left": disease_left, "burden": burden}
    rows = np.asarray(order)
    for name, array in values.items():
        column = np.empty(n, "int64")
        column[rows] = array
        result[name] = column

    if len(bound_groups):
        bound_claims = np.isin(claim_group, bound_groups)
        bound_stays = np.isin(stay_group, bound_groups)
        _settle_by_reference(claims[bound_claims], stays[bound_stays], result, terms=terms, disease_caps=disease_caps)
    return result


def _settle_by_reference(claims: pd.DataFrame, stays: pd.DataFrame, result: pd.DataFrame, *, terms, disease_caps) -> pd.DataFrame:
    """Fill ``result`` for ``claims`` with the reference loop, one patient-fund-year at a time."""
    stay_groups: dict[tuple[str, str], list[StayIn]] = {}
    stay_days = pd.to_datetime(stays["discharge_date"]).dt.date.tolist() if len(stays) else []
    for pid, fund, day, share in zip(stays["patient_id"].astype(str).tolist(), stays["fund"].tolist(), stay_days, stays["share"].tolist()):
        stay_groups.setdefault((pid, fund), []).append(StayIn(day, int(share)))
    if not len(claims):
        return result
    pids = claims["patient_id"].astype(str).tolist()
    funds = claims["fund"].tolist()
    columns = (
        claims["claim_no"].astype(str).tolist(), claims["institution_code"].astype(str).tolist(),
        pd.to_datetime(claims["service_date"]).dt.date.tolist(), claims["disease_code"].astype(str).tolist(),
        [int(v) for v in claims["level"].tolist()], [int(v) for v in claims["total"].tolist()],
        [int(v) for v in claims["eligible"].tolist()], list(range(len(claims))),
    )
    categories = claims["category"].tolist()
    groups: dict[tuple[str, str], list[ClaimIn]] = {}
    category_of: dict[tuple[str, str], str] = {}
    for position, values in enumerate(zip(*columns)):
        key = (pids[position], funds[position])
        groups.setdefault(key, []).append(ClaimIn(*values))
        category_of.setdefault(key, categories[position])
    positions: list[int] = []
    values: list[list[int]] = []
    for key, claim_list in groups.items():
        splits = settle_patient_year(
            claims=claim_list, stays=stay_groups.get(key, ()), category=category_of[key],
            terms=terms[key[1]], disease_caps=disease_caps,
        )
        positions.extend(split.key for split in splits)
        values.extend([int(getattr(split, name)) for name in RESULT_COLUMNS] for split in splits)
    labels = claims.index[np.asarray(positions, dtype="int64")]
    result.loc[labels, list(RESULT_COLUMNS)] = np.array(values, dtype="int64")
    return result


def explanation_of(row: Mapping, *, terms: BenefitTerms, level: int, category: str) -> dict:
    """The explanation of a claim settled by :func:`settle_frame` (the same keys as ClaimSplit's)."""
    aratio = terms.assistance_ratio_for(category)
    return ClaimSplit(
        key=None, claim_no="", institution_code="", basic=int(row["basic"]), critical=int(row["critical"]),
        assistance=int(row["assistance"]), patient=int(row["patient"]), ratio=terms.ratio(level),
        deductible=int(row["deductible"]), base=int(row["base"]), cap_left=int(row["cap_left"]),
        disease_cap_left=int(row["disease_cap_left"]), burden=int(row["burden"]), threshold=terms.threshold(category),
        critical_ratio=terms.critical_ratio_for(category), assistance_ratio=aratio,
    ).explanation()



REFUSE_UNKNOWN_DISEASE = "unknown special disease"
REFUSE_UNKNOWN_INSTITUTION = "unknown institution"
REFUSE_FUND_MISMATCH = "fund differs from the patient's listed fund"
REFUSE_ELIGIBLE_ABOVE_TOTAL = "eligible_cost exceeds total_cost"


def refusals(
    claims: pd.DataFrame,
    *,
    institutions: Iterable[str],
    diseases: Iterable[str],
    patient_funds: Mapping[str, str],
) -> pd.Series:
    """The reason each claim is refused ("" when it is settled), BENEFITS.md: unknown disease or
    institution, fund differing from the listed patient's, eligible cost above total cost. A refused
    claim is not settled and counts in no running total."""
    reason = pd.Series("", index=claims.index, dtype=object)
    listed_fund = claims["patient_id"].astype(str).map(dict(patient_funds))
    checks = (
        (claims["eligible"] > claims["total"], REFUSE_ELIGIBLE_ABOVE_TOTAL),
        (listed_fund.notna() & (listed_fund != claims["fund"]), REFUSE_FUND_MISMATCH),
        (~claims["disease_code"].astype(str).isin(set(diseases)), REFUSE_UNKNOWN_DISEASE),
        (~claims["institution_code"].astype(str).isin(set(institutions)), REFUSE_UNKNOWN_INSTITUTION),
    )
    for mask, text in checks:  # the last one listed wins: institution, disease, fund, amounts
        reason[mask.to_numpy()] = text
    return reason
