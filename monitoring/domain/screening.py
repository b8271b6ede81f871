"""MONITORING.md §2: the five screening rules over one run's valued cases (period: the year to date).

Every comparison is exact: integer sums compared by cross-multiplication with the parameter as a
Fraction (never the r4 figures shown). The previous year's frame, where given, holds the previous
year's binding run's valued cases; only its months 1..``through_month`` are compared ("same months").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd

from common.precision import r4
from monitoring.domain.cases import bed_days, ge, ge_array, int_sums, months, sorted_codes
from monitoring.domain.parameters import RULES, ScreeningParameters

NORMAL, TRANSFER, HIGH = "normal", "transfer", "high"
POOL_BASIS, PREVIOUS_BASIS = "pool", "previous_year"


@dataclass(frozen=True)
class Finding:
    """One flag: the institution's number that tripped the rule (value), the number it was compared
    with (reference), both r4, and the evidence cases as (case institution code, case_no) pairs."""

    rule: str
    institution: str
    value: Decimal
    reference: Decimal
    evidence: tuple[tuple[str, str], ...]
    basis: str = POOL_BASIS
    detail: dict = field(default_factory=dict)


def _q(x: Fraction) -> Decimal:
    return r4(x)


def _frac(value) -> Fraction:
    return Fraction(value)


def _evidence(institutions: np.ndarray, case_nos: np.ndarray) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(set(zip(institutions.tolist(), case_nos.tolist()))))


SUM_COLUMNS = ["n", "stable_n", "stable_base_u", "total_fen", "self_fen", "high_n", "transfer_n"]


def _sums(cases: pd.DataFrame) -> pd.DataFrame:
    """Per-institution integer sums of the year to date (index: institution code, sorted)."""
    if cases.empty:
        return pd.DataFrame({c: pd.Series(dtype=np.int64) for c in SUM_COLUMNS})
    code, names = sorted_codes(cases["institution"].to_numpy())
    stable = cases["stable"].to_numpy(bool)
    sums = int_sums(code, len(names), {
        "n": np.ones(len(cases), dtype=np.int64),
        "stable_n": stable.astype(np.int64),
        "stable_base_u": np.where(stable, cases["base_u"].to_numpy(np.int64), 0),
        "total_fen": cases["total_fen"].to_numpy(np.int64),
        "self_fen": cases["self_fen"].to_numpy(np.int64),
        "high_n": (cases["category"].to_numpy() == HIGH).astype(np.int64),
        "transfer_n": (cases["discharge_status"].to_numpy() == TRANSFER).astype(np.int64),
    })
    return pd.DataFrame(sums, index=pd.Index(names, dtype=object))


class _Pool:
    """The year-to-date cases with the integer columns the rules share, computed once."""

    def __init__(self, cases: pd.DataFrame, previous: pd.DataFrame | None, through_month: int):
        self.cases = cases.reset_index(drop=True)
        self.inst = self.cases["institution"].to_numpy().astype(object)
        self.case_no = self.cases["case_no"].to_numpy().astype(object)
        self.sums = _sums(self.cases)
        self.pool = self.sums.sum()
        if previous is not None and not previous.empty:
            previous = previous[months(previous) <= through_month]
            self.previous = _sums(previous)
        else:
            self.previous = _sums(self.cases.iloc[0:0])
        self.group_codes, self.groups = pd.factorize(self.cases["group"].to_numpy())
        self.inst_code, self.inst_names = sorted_codes(self.inst)
        self.inst_index = {code: i for i, code in enumerate(self.inst_names)}

    def of(self, code: str) -> np.ndarray:
        """Mask of the institution's cases."""
        return self.inst_code == self.inst_index[code]


# --- split_stay 分解住院 ---------------------------------------------------------------------------

def _split_stay(p: _Pool, params: ScreeningParameters) -> list[Finding]:
    c = p.cases
    patient, _ = pd.factorize(c["patient_id"].to_numpy())
    inst_code = p.inst_code
    admission = c["admission_date"].to_numpy("datetime64[D]").astype(np.int64)
    discharge = c["discharge_date"].to_numpy("datetime64[D]").astype(np.int64)
    order = np.lexsort((inst_code, discharge, admission, patient))
    order = _break_ties_by_case_no(order, (patient, admission, discharge, inst_code), p.case_no)
    a, b = order[:-1], order[1:]  # neighbours first
    gap = admission[b] - discharge[a]
    pair = (patient[a] == patient[b]) & (gap >= 0) & (gap <= params.split_stay_days)
    exempt = c["exempt"].to_numpy(bool)
    halved = c["halved"].to_numpy(bool)
    dropped = exempt[a] | exempt[b] | ((inst_code[a] == inst_code[b]) & (p.group_codes[a] == p.group_codes[b]) & halved[a])
    pair &= ~dropped
    first, second = a[pair], b[pair]
    pairs_by_inst = pd.Series(p.inst[first]).value_counts()
    pool_pairs, pool_cases = int(pair.sum()), int(p.pool["n"])
    factor = _frac(params.split_stay_factor)
    findings = []
    for code, pairs_h in sorted(pairs_by_inst.items()):
        pairs_h, cases_h = int(pairs_h), int(p.sums.at[code, "n"])
        if pairs_h >= params.split_stay_min_pairs and ge(pairs_h, cases_h, factor, pool_pairs, pool_cases):
            mine = inst_code[first] == p.inst_index[code]
            evidence = _evidence(
                np.concatenate([p.inst[first[mine]], p.inst[second[mine]]]),
                np.concatenate([p.case_no[first[mine]], p.case_no[second[mine]]]),
            )
            findings.append(Finding("split_stay", code, _q(Fraction(pairs_h, cases_h)), _q(Fraction(pool_pairs, pool_cases)), evidence,
                                    detail={"pairs": pairs_h, "pool_pairs": pool_pairs}))
    return findings


def _break_ties_by_case_no(order: np.ndarray, keys: tuple, case_no: np.ndarray) -> np.ndarray:
    """Within runs of equal sort keys (the same patient's stays with equal dates at one
    institution, rare), order by case_no."""
    if len(order) < 2:
        return order
    same = np.ones(len(order) - 1, dtype=bool)
    for key in keys:
        k = key[order]
        same &= k[1:] == k[:-1]
    if not same.any():
        return order
    order = order.copy()
    starts = np.flatnonzero(same & ~np.concatenate([[False], same[:-1]]))
    for start in starts:
        end = start + 1
        while end < len(same) and same[end]:
            end += 1
        segment = order[start:end + 1]
        order[start:end + 1] = segment[np.argsort(case_no[segment].astype(str), kind="stable")]
    return order


# --- low_standard_admission 低标入院 -----------------------------------------------------------------

def _low_standard(p: _Pool, params: ScreeningParameters) -> list[Finding]:
    c = p.cases
    stable = c["stable"].to_numpy(bool)
    limit = _frac(params.low_standard_max_ratio)
    low = (
        stable
        & (bed_days(c) <= params.low_standard_max_bed_days)
        & (c["total_fen"].to_numpy(np.int64) * limit.denominator <= limit.numerator * c["avg_fen"].to_numpy(np.int64))
        & (c["discharge_status"].to_numpy() == NORMAL)
    )
    low_by_inst = pd.Series(low.astype(np.int64)).groupby(p.inst).sum()
    pool_low, pool_stable = int(low.sum()), int(p.pool["stable_n"])
    factor = _frac(params.low_standard_factor)
    findings = []
    for code, low_h in sorted(low_by_inst.items()):
        low_h, stable_h = int(low_h), int(p.sums.at[code, "stable_n"])
        if low_h >= params.low_standard_min_cases and low_h > 0 and ge(low_h, stable_h, factor, pool_low, pool_stable):
            mine = low & p.of(code)
            findings.append(Finding("low_standard_admission", code, _q(Fraction(low_h, stable_h)), _q(Fraction(pool_low, pool_stable)),
                                    _evidence(p.inst[mine], p.case_no[mine]), detail={"cases": low_h}))
    return findings


# --- upcoding 高套 ---------------------------------------------------------------------------------

def _adrg_of_groups(groups: pd.Index) -> np.ndarray:
    """ADRG per group code: the first three characters of a four-character code ending in a digit, else ''."""
    return np.array([g[:3] if isinstance(g, str) and len(g) == 4 and g[3].isdigit() else "" for g in groups], dtype=object)


def _upcoding(p: _Pool, params: ScreeningParameters) -> list[Finding]:
    adrg_of_group = _adrg_of_groups(p.groups)
    severe_of_group = np.array([isinstance(g, str) and len(g) == 4 and g[3].isdigit() and g[3] == "1" for g in p.groups], dtype=bool)
    adrg_ids, adrg_names = pd.factorize(adrg_of_group)  # per group: its ADRG id ('' for none)
    none_id = list(adrg_names).index("") if "" in list(adrg_names) else -1
    adrg = adrg_ids[p.group_codes] if len(p.groups) else np.zeros(0, dtype=np.int64)
    severe = severe_of_group[p.group_codes] if len(p.groups) else np.zeros(0, dtype=bool)
    has = adrg != none_id
    n_adrg, n_inst = len(adrg_names), len(p.inst_names)
    key = p.inst_code[has].astype(np.int64) * n_adrg + adrg[has]
    n = np.bincount(key, minlength=n_inst * n_adrg).reshape(n_inst, n_adrg)
    s1 = np.bincount(key, weights=severe[has].astype(np.int64), minlength=n_inst * n_adrg).astype(np.int64).reshape(n_inst, n_adrg)
    n_a, s1_a = n.sum(axis=0), s1.sum(axis=0)
    factor = _frac(params.upcoding_factor)
    # s1/n ≥ f × s1_a/n_a, exactly: s1 × n_a × q ≥ p × s1_a × n (Python ints on the few candidates)
    candidate = (n >= params.upcoding_min_cases) & (s1_a[None, :] > 0) & (s1 > 0)
    flagged_adrg: dict[str, list[tuple[str, int, int, int, int, int]]] = {}
    for h, a in zip(*np.nonzero(candidate)):
        if ge(int(s1[h, a]), int(n[h, a]), factor, int(s1_a[a]), int(n_a[a])):
            flagged_adrg.setdefault(p.inst_names[h], []).append((adrg_names[a], int(a), int(s1[h, a]), int(n[h, a]), int(s1_a[a]), int(n_a[a])))
    cmi_factor = _frac(params.upcoding_cmi_factor)
    findings = []
    for code in p.sums.index:
        rows = flagged_adrg.get(code, [])
        cmi_flag = False
        now_b, now_n = int(p.sums.at[code, "stable_base_u"]), int(p.sums.at[code, "stable_n"])
        prev_b = prev_n = 0
        if code in p.previous.index:
            prev_b, prev_n = int(p.previous.at[code, "stable_base_u"]), int(p.previous.at[code, "stable_n"])
            cmi_flag = prev_n > 0 and now_n > 0 and prev_b > 0 and ge(now_b, now_n, cmi_factor, prev_b, prev_n)
        if not rows and not cmi_flag:
            continue
        if rows:
            best = max(rows, key=lambda r: (Fraction(r[2] * r[5], r[3] * r[4]), [-ord(ch) for ch in r[0]]))
            value, reference = Fraction(best[2], best[3]), Fraction(best[4], best[5])
            basis, detail = POOL_BASIS, {"adrg": best[0], "adrgs": sorted(r[0] for r in rows), "cmi_flag": cmi_flag}
        else:
            value, reference = Fraction(now_b, now_n * 1_000_000), Fraction(prev_b, prev_n * 1_000_000)
            basis, detail = PREVIOUS_BASIS, {"adrgs": []}
        if rows:
            wanted = np.zeros(n_adrg, dtype=bool)
            wanted[[r[1] for r in rows]] = True
            mine = p.of(code) & severe & wanted[adrg]
        else:
            mine = np.zeros(len(p.inst), dtype=bool)
        findings.append(Finding("upcoding", code, _q(value), _q(reference), _evidence(p.inst[mine], p.case_no[mine]), basis, detail))
    return findings


# --- cost_shifting 转嫁费用 ------------------------------------------------------------------------

def _cost_shifting(p: _Pool, params: ScreeningParameters) -> list[Finding]:
    margin, previous_margin = _frac(params.cost_shifting_margin), _frac(params.cost_shifting_previous_margin)
    pool_total, pool_self = int(p.pool["total_fen"]), int(p.pool["self_fen"])
    pool_share = Fraction(pool_self, pool_total) if pool_total > 0 else None
    findings = []
    total = p.cases["total_fen"].to_numpy(np.int64)
    self_pay = p.cases["self_fen"].to_numpy(np.int64)
    for code, rec in p.sums.iterrows():
        if int(rec["total_fen"]) <= 0:
            continue
        share = Fraction(int(rec["self_fen"]), int(rec["total_fen"]))
        by_pool = pool_share is not None and share >= pool_share + margin
        previous_share = None
        if code in p.previous.index and int(p.previous.at[code, "total_fen"]) > 0:
            previous_share = Fraction(int(p.previous.at[code, "self_fen"]), int(p.previous.at[code, "total_fen"]))
        by_previous = previous_share is not None and share >= previous_share + previous_margin
        if not (by_pool or by_previous):
            continue
        mine = np.flatnonzero(p.of(code) & (total > 0))
        hit = ge_array(self_pay[mine], total[mine], pool_share + margin) if pool_share is not None else np.zeros(len(mine), bool)
        idx = mine[hit]
        reference = pool_share if by_pool else previous_share
        findings.append(Finding("cost_shifting", code, _q(share), _q(reference), _evidence(p.inst[idx], p.case_no[idx]),
                                POOL_BASIS if by_pool else PREVIOUS_BASIS))
    return findings


# --- patient_selection 推诿病人 --------------------------------------------------------------------

def _patient_selection(p: _Pool, params: ScreeningParameters) -> list[Finding]:
    factor, high_factor = _frac(params.patient_selection_transfer_factor), _frac(params.patient_selection_high_factor)
    pool_transfer, pool_n = int(p.pool["transfer_n"]), int(p.pool["n"])
    transfer = p.cases["discharge_status"].to_numpy() == TRANSFER
    findings = []
    for code, rec in p.sums.iterrows():
        n, transfer_h, high_h = int(rec["n"]), int(rec["transfer_n"]), int(rec["high_n"])
        by_pool = transfer_h >= params.patient_selection_min_transfers and ge(transfer_h, n, factor, pool_transfer, pool_n)
        by_previous = False
        if code in p.previous.index:
            prev_high, prev_n = int(p.previous.at[code, "high_n"]), int(p.previous.at[code, "n"])
            if prev_n > 0 and prev_high >= params.patient_selection_min_previous_high:
                # high_h / n ≤ f × prev_high / prev_n
                by_previous = high_h * prev_n * high_factor.denominator <= high_factor.numerator * prev_high * n
        if not (by_pool or by_previous):
            continue
        if by_pool:
            value, reference, basis = Fraction(transfer_h, n), Fraction(pool_transfer, pool_n), POOL_BASIS
        else:
            value, reference, basis = Fraction(high_h, n), Fraction(prev_high, prev_n), PREVIOUS_BASIS
        mine = transfer & p.of(code)
        findings.append(Finding("patient_selection", code, _q(value), _q(reference), _evidence(p.inst[mine], p.case_no[mine]), basis))
    return findings


RULE_FUNCTIONS = {
    "cost_shifting": _cost_shifting,
    "low_standard_admission": _low_standard,
    "patient_selection": _patient_selection,
    "split_stay": _split_stay,
    "upcoding": _upcoding,
}


def screen(
    cases: pd.DataFrame,
    *,
    params: ScreeningParameters | None = None,
    previous: pd.DataFrame | None = None,
    through_month: int = 12,
    rules: tuple[str, ...] = RULES,
) -> list[Finding]:
    """Findings of the switched-on rules, sorted by rule name, then institution code."""
    params = params or ScreeningParameters()
    if cases.empty:
        return []
    pool = _Pool(cases, previous, through_month)
    findings: list[Finding] = []
    for rule in sorted(rules):
        if params.enabled(rule):
            findings.extend(RULE_FUNCTIONS[rule](pool, params))
    findings.sort(key=lambda f: (f.rule, f.institution))
    return findings
