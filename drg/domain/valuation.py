"""SETTLEMENT.md §2: case valuation, vectorised and exact.

Every amount is an integer number of fen and every point an integer number of ten-thousandths
(`*_fen`, `*_u` columns), so the arithmetic below is exact integer arithmetic. Where the spec
divides (r = total_cost / avg_cost, cost / A), the division is carried as numerator/denominator and
rounded once, half-up, to 0.0001 point: the result equals exact decimal arithmetic for every input.
Intermediate products are split (divmod) so they fit in int64 for realistic magnitudes; inputs
beyond those bounds are computed with Python integers (object arrays) by the same code.

Pure: numpy and pandas only (no Django); a newcomer finds each category's formula in `_points_*`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from common.precision import POINT_SCALE

SPECIAL_REVIEW = "special_review"
PER_DIEM = "per_diem"
UNSTABLE = "unstable"
HIGH = "high"
LOW = "low"
NORMAL = "normal"
CATEGORIES = (SPECIAL_REVIEW, PER_DIEM, UNSTABLE, HIGH, LOW, NORMAL)
RULES = {
    SPECIAL_REVIEW: "a: approved special review: approved_cost / A × 100",
    PER_DIEM: "b: per-diem group: daily_points × bed_days",
    UNSTABLE: "c: unstable group: total_cost / A × 100",
    HIGH: "d: r ≥ m: base × c + base × (r − m)",
    LOW: "e: incomplete stay or r ≤ low multiple: min(base × c × r, base)",
    NORMAL: "f: base × c",
}
INCOMPLETE_STATUSES = ("transfer", "against_advice", "death")
READMISSION_CATEGORIES = (NORMAL, HIGH, LOW, UNSTABLE)
_CATEGORY_NAMES = np.array(CATEGORIES, dtype=object)

U = POINT_SCALE  # 10_000: ten-thousandths per point, and the scale of coefficients and ratios
INT64_SAFE = 2**62

CASE_COLUMNS = (
    "case_no", "institution", "patient_id", "admission_date", "discharge_date", "drg_code",
    "total_fen", "discharge_status", "tcm_treatment", "review_fen",
)
GROUP_COLUMNS = ("code", "kind", "base_u", "avg_fen", "daily_u", "same_price", "readmission_exempt")


class ValuationInputError(ValueError):
    """The catalog cannot value these cases (e.g. a stable group without base points)."""


@dataclass(frozen=True)
class Tier:
    upto: Decimal | None
    value: Decimal


@dataclass(frozen=True)
class ValuationScheme:
    all_case_avg_cost: Decimal
    high_outlier_tiers: tuple[Tier, ...] = (
        Tier(Decimal(100), Decimal(3)), Tier(Decimal(200), Decimal(2)), Tier(None, Decimal("1.5")),
    )
    low_outlier_multiple: Decimal = Decimal("0.4")
    readmission_days: int = 15
    readmission_factor: Decimal = Decimal("0.5")


@dataclass(frozen=True)
class Catalog:
    """A region-year catalog in integer units.

    groups: one row per group code with GROUP_COLUMNS (base_u/avg_fen/daily_u may be missing: <NA>).
    coefficients: rows (institution, drg_code, coef_u) — an institution's own coefficient per group.
    institution_coefficients: institution -> default coef_u (<NA>: none, which means 1).
    tcm_equivalents: drg_code -> equivalent group code.
    """

    groups: pd.DataFrame
    coefficients: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["institution", "drg_code", "coef_u"]))
    institution_coefficients: Mapping = field(default_factory=dict)
    tcm_equivalents: Mapping[str, str] = field(default_factory=dict)


def _units(value: Decimal, scale: int = U) -> int:
    scaled = Decimal(value) * scale
    if scaled != scaled.to_integral_value():
        raise ValuationInputError(f"{value} has more precision than 1/{scale}")
    return int(scaled)


def _div_round(num, den):
    """round_half_up(num / den) for num ≥ 0, den > 0 (integer arrays)."""
    return (2 * num + den) // (2 * den)


def _as_int(values, big: bool):
    array = np.asarray(values, dtype=np.int64)
    return array.astype(object) if big else array


def value_cases(cases: pd.DataFrame, catalog: Catalog, scheme: ValuationScheme) -> pd.DataFrame:
    """Value every case; return a frame aligned with `cases` (same index) with the explanation.

    Input columns (CASE_COLUMNS): case_no, institution (any hashable key), patient_id,
    admission_date and discharge_date (datetime64 or date), drg_code, total_fen (int), discharge_status,
    tcm_treatment (bool), review_fen (approved special-review cost in fen, or -1 / <NA> for none);
    optionally patient_key: a non-negative integer per distinct patient_id (e.g. pd.factorize of the
    ids, as settlement's pool reader adds), which spares hashing the id strings for readmissions.

    Output columns: valuation_group, coef_u, ratio_u (<NA> where the group has no avg cost),
    category, rule, base_u (<NA> where none), bed_days, readmission_halved, points_before_u, points_u.
    """
    n = len(cases)
    if n == 0:
        return _empty_result(cases.index)

    groups = catalog.groups.drop_duplicates("code").set_index("code")

    # 1. valuation group (TCM equivalents: 中西医同病同价), and its row in the catalog
    valuation_group, position = _valuation_groups(cases, groups.index, catalog)
    if (position < 0).any():
        missing = sorted(set(valuation_group[position < 0]))
        raise ValuationInputError(f"cases refer to groups missing from the catalog: {', '.join(missing[:20])}")

    kind = groups["kind"].to_numpy()[position]
    base_na = groups["base_u"].isna().to_numpy()[position]
    avg_na = groups["avg_fen"].isna().to_numpy()[position]
    daily_na = groups["daily_u"].isna().to_numpy()[position]
    group_base_u = groups["base_u"].fillna(0).to_numpy(dtype=np.int64)
    base_u = group_base_u[position]
    avg_fen = groups["avg_fen"].fillna(1).to_numpy(dtype=np.int64)[position]
    daily_u = groups["daily_u"].fillna(0).to_numpy(dtype=np.int64)[position]
    same_price = groups["same_price"].to_numpy(dtype=bool)[position]
    exempt = groups["readmission_exempt"].to_numpy(dtype=bool)[position]

    # 2. coefficient: own (institution, group) > institution default > 1; same_price groups: 1
    inst_codes, inst_keys = pd.factorize(cases["institution"].to_numpy())
    coef_u = _coefficients(inst_codes, inst_keys, position, groups.index, catalog)
    coef_u = np.where(same_price, U, coef_u)

    # 3. bed days and ratio inputs
    admission = _days(cases["admission_date"])
    discharge = _days(cases["discharge_date"])
    bed_days = np.maximum(1, discharge - admission)
    total_fen = cases["total_fen"].to_numpy(dtype=np.int64)
    review = pd.to_numeric(cases["review_fen"], errors="coerce").fillna(-1).to_numpy(dtype=np.int64)
    has_review = review >= 0
    all_case_avg_fen = _units(scheme.all_case_avg_cost, 100)
    if all_case_avg_fen <= 0:
        raise ValuationInputError("all_case_avg_cost must be positive")

    # 4. category, first rule that applies
    is_per_diem = (kind == PER_DIEM) & ~has_review
    is_unstable = (kind == UNSTABLE) & ~has_review & ~is_per_diem
    stable = ~(has_review | is_per_diem | is_unstable)
    _check_catalog(valuation_group, stable & (base_na | avg_na), "stable groups need base_points and avg_cost")
    _check_catalog(valuation_group, is_per_diem & daily_na, "per-diem groups need daily_points")

    group_m_u, group_has_tier = _high_multiple_u(group_base_u, scheme.high_outlier_tiers)  # per group, spread to the cases
    m_u, has_tier = group_m_u[position], group_has_tier[position]
    low_u = _units(scheme.low_outlier_multiple)
    is_high = stable & has_tier & (total_fen * U >= m_u * avg_fen)
    incomplete = _is_in(cases["discharge_status"], INCOMPLETE_STATUSES)
    is_low = stable & ~is_high & (incomplete | (total_fen * U <= low_u * avg_fen))
    is_normal = stable & ~is_high & ~is_low

    # CATEGORIES[code]: the six names shared by every row, not a million new strings
    category = _CATEGORY_NAMES[np.select([has_review, is_per_diem, is_unstable, is_high, is_low], [0, 1, 2, 3, 4], default=5)]

    # each formula computed on the rows of its category only
    big = _needs_big_ints(total_fen, review, base_u, coef_u, m_u, avg_fen, daily_u, bed_days, all_case_avg_fen)
    points = np.zeros(n, dtype=object if big else np.int64)
    _fill(points, has_review, lambda r: _points_special_review(r, all_case_avg_fen, big), review)
    _fill(points, is_per_diem, lambda d, b: _as_int(d, big) * _as_int(b, big), daily_u, bed_days)
    _fill(points, is_unstable, lambda t: _points_unstable(t, all_case_avg_fen, big), total_fen)
    _fill(points, is_high, lambda *columns: _points_high(*columns, big), base_u, coef_u, m_u, total_fen, avg_fen)
    _fill(points, is_low, lambda *columns: _points_low(*columns, big), base_u, coef_u, total_fen, avg_fen)
    _fill(points, is_normal, lambda b, c: _div_round(_as_int(b, big) * _as_int(c, big), U), base_u, coef_u)

    # 5. readmission (分解住院): the earlier of two stays 0..N days apart is multiplied by the factor
    eligible = (is_normal | is_high | is_low | is_unstable) & ~exempt  # READMISSION_CATEGORIES, from the masks
    halved = _readmission_flags(cases, inst_codes, position, admission, discharge, eligible, scheme.readmission_days)
    factor_u = _units(scheme.readmission_factor)
    points_after = points.copy()
    if halved.any():
        points_after[halved] = _div_round(points[halved] * factor_u, U)

    ratio_u = pd.array(_div_round(total_fen.astype(object if big else np.int64) * U, avg_fen), dtype="Int64")
    ratio_u[avg_na] = pd.NA
    base_out = pd.array(base_u, dtype="Int64")
    base_out[base_na] = pd.NA

    return pd.DataFrame(
        {
            "valuation_group": valuation_group,
            "coef_u": coef_u.astype(np.int64),
            "ratio_u": ratio_u,
            "category": category,
            "base_u": base_out,
            "bed_days": bed_days.astype(np.int64),
            "readmission_halved": halved,
            "points_before_u": np.asarray(points, dtype=np.int64),
            "points_u": np.asarray(points_after, dtype=np.int64),
        },
        index=cases.index,
    )


# --- the point formulas (integer ten-thousandths) --------------------------------------------------

def _points_special_review(review_fen, a_fen, big):
    """a: r4(approved_cost / A × 100)."""
    return _div_round(_as_int(np.maximum(review_fen, 0), big) * (100 * U), a_fen)


def _points_unstable(total_fen, a_fen, big):
    """c: r4(total_cost / A × 100)."""
    return _div_round(_as_int(total_fen, big) * (100 * U), a_fen)


def _points_high(base_u, coef_u, m_u, total_fen, avg_fen, big):
    """d: r4(base × c + base × (r − m)) = r4(base × (c − m) + base × total / avg).

    In ten-thousandths: X / U + Y / avg with X = base_u × (coef_u − m_u), Y = base_u × total_fen.
    """
    base, avg = _as_int(base_u, big), _as_int(avg_fen, big)
    x = base * (_as_int(coef_u, big) - _as_int(m_u, big))
    y = base * _as_int(total_fen, big)
    xq, xr = x // U, x % U
    yq, yr = y // avg, y % avg
    fraction_num = xr * avg + yr * U
    return xq + yq + _div_round(fraction_num, avg * U)


def _points_low(base_u, coef_u, total_fen, avg_fen, big):
    """e: r4(min(base × c × r, base)); base × c × r in ten-thousandths is K × total / (avg × U)."""
    base, coef, total, avg = (_as_int(v, big) for v in (base_u, coef_u, total_fen, avg_fen))
    capped = coef * total >= U * avg  # c × r ≥ 1: the minimum is the base itself
    k = base * coef
    kq, kr = k // U, k % U
    t1, t2 = kq * total, kr * total
    q1, r1 = t1 // avg, t1 % avg
    q2, r2 = t2 // (avg * U), t2 % (avg * U)
    value = q1 + q2 + _div_round(r1 * U + r2, avg * U)
    return np.where(capped, base, value)


def _fill(target: np.ndarray, mask: np.ndarray, formula, *columns: np.ndarray) -> None:
    """target[mask] = formula(the columns' rows of mask)."""
    if mask.any():
        target[mask] = formula(*(column[mask] for column in columns))


# --- helpers ----------------------------------------------------------------------------------------

def _days(column: pd.Series) -> np.ndarray:
    return pd.to_datetime(column).to_numpy(dtype="datetime64[D]").astype(np.int64)


DENSE_LOOKUP_MAX = 4_000_000  # 32 MiB of int64: institutions × groups of a province, and more


def _coefficients(inst_codes: np.ndarray, inst_keys, position: np.ndarray, group_index: pd.Index, catalog: Catalog) -> np.ndarray:
    """Per case: own (institution, group) coefficient > institution default > 1, looked up on
    integer keys (institution code × catalog position), not on strings."""
    defaults = np.array([catalog.institution_coefficients.get(key, U) for key in inst_keys.tolist()], dtype=np.int64)
    coef = defaults[inst_codes] if len(defaults) else np.full(len(position), U, dtype=np.int64)
    own = catalog.coefficients
    if own is not None and len(own):
        own_inst = pd.Index(inst_keys).get_indexer(own["institution"].to_numpy())
        own_group = group_index.get_indexer(own["drg_code"].astype(str).to_numpy())
        usable = (own_inst >= 0) & (own_group >= 0)  # institutions without cases, groups not in the catalog
        n_groups = max(len(group_index), 1)
        keys = own_inst[usable].astype(np.int64) * n_groups + own_group[usable]
        wanted = inst_codes.astype(np.int64) * n_groups + position
        if len(inst_keys) * n_groups <= DENSE_LOOKUP_MAX:  # (institution, group) pairs few enough for a table
            table = np.full(len(inst_keys) * n_groups, -1, dtype=np.int64)
            table[keys] = np.arange(len(keys))
            where = table[wanted]
        else:
            where = pd.Index(keys).get_indexer(wanted)
        found = where >= 0
        coef[found] = own["coef_u"].to_numpy(dtype=np.int64)[usable][where[found]]
    return coef


def _high_multiple_u(base_u: np.ndarray, tiers: Sequence[Tier]) -> tuple[np.ndarray, np.ndarray]:
    """m of the first tier whose `upto` ≥ base (null upto: no limit), and whether a tier applies
    at all (a base above every bounded tier has no high-outlier rule)."""
    conditions, choices = [], []
    for tier in tiers:
        conditions.append(np.ones(len(base_u), dtype=bool) if tier.upto is None else base_u <= _units(tier.upto))
        choices.append(_units(tier.value))
    has_tier = np.logical_or.reduce(conditions) if conditions else np.zeros(len(base_u), dtype=bool)
    return np.select(conditions, choices, default=0).astype(np.int64), has_tier


def _readmission_flags(cases, institution_codes, group_position, admission, discharge, eligible, days: int) -> np.ndarray:
    """True for the earlier stay of each consecutive pair (same patient, institution and valuation
    group, sorted by admission, discharge, case_no) whose next stay starts 0..days after its discharge."""
    n = len(cases)
    halved = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(eligible)
    if len(idx) < 2:
        return halved
    inst_codes = institution_codes[idx].astype(np.int64)
    patient_codes = _patient_codes(cases, idx)
    group_codes = group_position[idx].astype(np.int64)
    # one int64 key per (institution, patient, group): a single sort key instead of three
    n_patients, n_groups = int(patient_codes.max()) + 1, int(group_codes.max()) + 1
    if (int(inst_codes.max()) + 1) * n_patients * n_groups < 2**62:
        key = (inst_codes * n_patients + patient_codes) * n_groups + group_codes
    else:  # beyond any real pool; factorize the triples instead
        key = pd.MultiIndex.from_arrays([inst_codes, patient_codes, group_codes]).factorize()[0].astype(np.int64)
    repeated = _repeated(key)
    idx = idx[repeated]
    if len(idx) < 2:
        return halved
    key = key[repeated]
    adm, dis = admission[idx], discharge[idx]
    # case_no breaks ties only between stays with the same key and dates: rank just those
    case_rank = np.zeros(len(idx), dtype=np.int64)
    tied = pd.DataFrame({"k": key, "a": adm, "d": dis}).duplicated(keep=False).to_numpy()
    if tied.any():
        case_rank[tied] = pd.factorize(cases["case_no"].astype(str).to_numpy()[idx[tied]], sort=True)[0]
    order = np.lexsort((case_rank, dis, adm, key))
    s_idx = idx[order]
    sorted_key = key[order]
    same_key = sorted_key[1:] == sorted_key[:-1]
    gap = admission[s_idx[1:]] - discharge[s_idx[:-1]]
    pair = same_key & (gap >= 0) & (gap <= days)
    halved[s_idx[:-1][pair]] = True
    return halved


def _repeated(key: np.ndarray) -> np.ndarray:
    """True where the key occurs more than once; by a sort (numpy's are vectorised), about twice as
    fast as a hash table here."""
    order = np.argsort(key)
    sorted_key = key[order]
    same = sorted_key[1:] == sorted_key[:-1]
    in_run = np.zeros(len(key), dtype=bool)
    in_run[1:] = same
    in_run[:-1] |= same
    repeated = np.empty(len(key), dtype=bool)
    repeated[order] = in_run
    return repeated


def _codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, code per row) of a text column: from a categorical column as it is (the
    pool reader's drg_code and discharge_status), else by factorizing the strings."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.categories.to_numpy(dtype=object), column.cat.codes.to_numpy(dtype=np.int64)
    codes, uniques = pd.factorize(column.astype(str).to_numpy())
    return np.asarray(uniques, dtype=object), codes.astype(np.int64)


def _is_in(column: pd.Series, values) -> np.ndarray:
    if isinstance(column.dtype, pd.CategoricalDtype):
        uniques, codes = _codes(column)
        return np.isin(uniques, list(values))[codes] if len(uniques) else np.zeros(len(column), dtype=bool)
    return np.isin(column.to_numpy(), values)


def _valuation_groups(cases: pd.DataFrame, group_index: pd.Index, catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """Each case's valuation group (its DRG, or the TCM equivalent group when treated by TCM and
    the catalog names one) and that group's position in `group_index` (−1 when missing).

    The distinct DRG codes are looked up once each and spread to the rows by integer codes."""
    uniques, codes = _codes(cases["drg_code"])
    valuation_group = uniques[codes]
    position = group_index.get_indexer(uniques)[codes] if len(uniques) else np.full(len(codes), -1, dtype=np.int64)
    if catalog.tcm_equivalents and len(uniques):
        tcm = cases["tcm_treatment"].to_numpy(dtype=bool)
        equivalent = pd.Series(uniques, dtype=object).map(dict(catalog.tcm_equivalents)).to_numpy(dtype=object)  # per distinct DRG
        has_equivalent = pd.notna(equivalent)
        use_equivalent = tcm & has_equivalent[codes]
        if use_equivalent.any():
            equivalent_position = np.full(len(uniques), -1, dtype=np.int64)
            equivalent_position[has_equivalent] = group_index.get_indexer(equivalent[has_equivalent])
            valuation_group[use_equivalent] = equivalent[codes[use_equivalent]]
            position[use_equivalent] = equivalent_position[codes[use_equivalent]]
    return valuation_group, position


def _patient_codes(cases: pd.DataFrame, idx: np.ndarray) -> np.ndarray:
    """Non-negative integer codes of the patients of rows `idx`: the frame's patient_key when it has
    one (equal for equal patient ids, as pd.factorize gives), else the id strings factorized here."""
    if "patient_key" in cases.columns:
        codes = cases["patient_key"].to_numpy(dtype=np.int64)[idx]
        if len(codes) and codes.min() >= 0:
            return codes
    return pd.factorize(cases["patient_id"].to_numpy()[idx])[0].astype(np.int64)


def _check_catalog(groups: np.ndarray, bad: np.ndarray, message: str) -> None:
    if bad.any():
        raise ValuationInputError(f"{message}: {', '.join(sorted(set(groups[bad]))[:20])}")


def _needs_big_ints(total_fen, review, base_u, coef_u, m_u, avg_fen, daily_u, bed_days, a_fen) -> bool:
    """True when some intermediate product could leave int64 (then Python integers are used)."""
    def top(values) -> int:
        return int(np.max(np.abs(values))) if len(values) else 0

    t, rv, b, c, m, a, d, bd = (top(v) for v in (total_fen, review, base_u, coef_u, m_u, avg_fen, daily_u, bed_days))
    worst = max(
        b * (c + m) * 4,              # high: X; normal / low: K
        b * max(t, 1) * 2,            # high: Y
        (b * c // U + 1) * t,         # low: t1
        U * max(a, 1) * U * 4,        # low / high: fraction numerators and denominators
        max(t, rv, 1) * 100 * U * 2,  # unstable / special review / ratio
        d * bd,
        a_fen * 2,
    )
    return worst >= INT64_SAFE


def _empty_result(index) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "valuation_group": pd.Series(dtype=object), "coef_u": pd.Series(dtype=np.int64),
            "ratio_u": pd.Series(dtype="Int64"), "category": pd.Series(dtype=object),
            "base_u": pd.Series(dtype="Int64"), "bed_days": pd.Series(dtype=np.int64),
            "readmission_halved": pd.Series(dtype=bool), "points_before_u": pd.Series(dtype=np.int64),
            "points_u": pd.Series(dtype=np.int64),
        },
        index=index,
    )
