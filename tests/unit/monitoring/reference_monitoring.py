"""An independent, row-by-row reference of MONITORING.md §1, §2 and §4 (plain Python, Fractions),
against which the vectorised domain and the `screen` files are checked on generated regions.

Input: a list of dict cases with keys institution, case_no, patient_id, admission (date),
discharge (date), total_fen, self_fen, status, group, kind, base_u, avg_fen, exempt, category,
points_u, halved. Output: the three files' rows as lists of strings.
"""
from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction


def r4(x: Fraction | None) -> str:
    if x is None:
        return ""
    scaled = x * 10_000
    n = int(scaled + Fraction(1, 2)) if scaled >= 0 else -int(-scaled + Fraction(1, 2))
    return str(Decimal(n).scaleb(-4).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def bed_days(c) -> int:
    return max(1, (c["discharge"] - c["admission"]).days)


def _div(a, b):
    return None if b == 0 else Fraction(a, b)


def indicators(cases: list[dict], year: int) -> list[list[str]]:
    periods = defaultdict(list)
    for c in cases:
        periods[("*", str(year))].append(c)
        periods[("*", f"{year}-{c['discharge'].month:02d}")].append(c)
        periods[(c["institution"], str(year))].append(c)
        periods[(c["institution"], f"{year}-{c['discharge'].month:02d}")].append(c)
    rows = []
    for (inst, period) in sorted(periods, key=lambda k: ("" if k[0] == "*" else "1" + k[0], k[1])):
        mine = periods[(inst, period)]
        pool = periods[("*", period)]
        n = len(mine)
        stable = [c for c in mine if c["kind"] == "stable"]
        points = sum(c["points_u"] for c in mine)
        total = sum(c["total_fen"] for c in mine)

        def index(measure):
            if not stable:
                return None
            by_group = defaultdict(list)
            for c in stable:
                by_group[c["group"]].append(c)
            acc = Fraction(0)
            for g, own in by_group.items():
                everyone = [c for c in pool if c["group"] == g]
                mean_h = Fraction(sum(measure(c) for c in own), len(own))
                mean_g = Fraction(sum(measure(c) for c in everyone), len(everyone))
                acc += len(own) * (mean_h / mean_g if mean_g else 1)
            return acc / len(stable)

        rows.append([
            inst, period, str(n), r4(Fraction(points, 10_000)),
            r4(_div(sum(c["base_u"] for c in stable), len(stable) * 1_000_000)),
            r4(_div(total * 100, points)),
            r4(index(bed_days)), r4(index(lambda c: c["total_fen"])),
            r4(Fraction(sum(c["category"] == "high" for c in mine), n)),
            r4(Fraction(sum(c["category"] == "low" for c in mine), n)),
            r4(Fraction(sum(bool(c["halved"]) for c in mine), n)),
            r4(_div(sum(c["self_fen"] for c in mine), total)),
            r4(Fraction(sum(c["category"] == "special_review" for c in mine), n)),
            r4(Fraction(sum(c["status"] == "transfer" for c in mine), n)),
        ])
    return rows


def findings(cases: list[dict], year: int) -> tuple[list[list[str]], list[list[str]]]:
    """Default parameters, no previous year."""
    by_inst = defaultdict(list)
    for c in cases:
        by_inst[c["institution"]].append(c)
    found: list[tuple[str, str, Fraction, Fraction, set]] = []
    n_pool = len(cases)

    # split_stay
    ordered = sorted(cases, key=lambda c: (c["patient_id"], c["admission"], c["discharge"], c["institution"], c["case_no"]))
    pairs = []
    for a, b in zip(ordered, ordered[1:]):
        if a["patient_id"] != b["patient_id"]:
            continue
        gap = (b["admission"] - a["discharge"]).days
        if not 0 <= gap <= 15:
            continue
        if a["exempt"] or b["exempt"]:
            continue
        if a["institution"] == b["institution"] and a["group"] == b["group"] and a["halved"]:
            continue
        pairs.append((a, b))
    per = defaultdict(list)
    for a, b in pairs:
        per[a["institution"]].append((a, b))
    for inst, mine in per.items():
        if len(mine) >= 3 and Fraction(len(mine), len(by_inst[inst])) >= 2 * Fraction(len(pairs), n_pool):
            found.append(("split_stay", inst, Fraction(len(mine), len(by_inst[inst])), Fraction(len(pairs), n_pool),
                          {(c["institution"], c["case_no"]) for pair in mine for c in pair}))

    # low_standard_admission
    def low(c):
        return (c["kind"] == "stable" and bed_days(c) <= 2 and Fraction(c["total_fen"], c["avg_fen"]) <= Fraction(2, 5)
                and c["status"] == "normal")
    pool_stable = sum(c["kind"] == "stable" for c in cases)
    pool_low = sum(low(c) for c in cases)
    for inst, mine in by_inst.items():
        lows = [c for c in mine if low(c)]
        stable_h = sum(c["kind"] == "stable" for c in mine)
        if len(lows) >= 5 and Fraction(len(lows), stable_h) >= 2 * Fraction(pool_low, pool_stable):
            found.append(("low_standard_admission", inst, Fraction(len(lows), stable_h), Fraction(pool_low, pool_stable),
                          {(c["institution"], c["case_no"]) for c in lows}))

    # upcoding
    def adrg(c):
        g = c["group"]
        return g[:3] if len(g) == 4 and g[3].isdigit() else None
    pool_n, pool_s1 = defaultdict(int), defaultdict(int)
    for c in cases:
        if adrg(c):
            pool_n[adrg(c)] += 1
            pool_s1[adrg(c)] += c["group"][3] == "1"
    for inst, mine in by_inst.items():
        n, s1 = defaultdict(int), defaultdict(int)
        for c in mine:
            if adrg(c):
                n[adrg(c)] += 1
                s1[adrg(c)] += c["group"][3] == "1"
        flagged = [a for a in n if n[a] >= 20 and pool_s1[a] > 0 and Fraction(s1[a], n[a]) >= Fraction(3, 2) * Fraction(pool_s1[a], pool_n[a])]
        if flagged:
            best = sorted(flagged, key=lambda a: (-(Fraction(s1[a], n[a]) / Fraction(pool_s1[a], pool_n[a])), a))[0]
            found.append(("upcoding", inst, Fraction(s1[best], n[best]), Fraction(pool_s1[best], pool_n[best]),
                          {(c["institution"], c["case_no"]) for c in mine if adrg(c) in flagged and c["group"][3] == "1"}))

    # cost_shifting
    total_pool = sum(c["total_fen"] for c in cases)
    share_pool = Fraction(sum(c["self_fen"] for c in cases), total_pool)
    for inst, mine in by_inst.items():
        total = sum(c["total_fen"] for c in mine)
        if total and Fraction(sum(c["self_fen"] for c in mine), total) >= share_pool + Fraction(1, 20):
            found.append(("cost_shifting", inst, Fraction(sum(c["self_fen"] for c in mine), total), share_pool,
                          {(c["institution"], c["case_no"]) for c in mine if c["total_fen"] and Fraction(c["self_fen"], c["total_fen"]) >= share_pool + Fraction(1, 20)}))

    # patient_selection
    transfers_pool = sum(c["status"] == "transfer" for c in cases)
    for inst, mine in by_inst.items():
        t = [c for c in mine if c["status"] == "transfer"]
        if len(t) >= 5 and Fraction(len(t), len(mine)) >= 2 * Fraction(transfers_pool, n_pool):
            found.append(("patient_selection", inst, Fraction(len(t), len(mine)), Fraction(transfers_pool, n_pool),
                          {(c["institution"], c["case_no"]) for c in t}))

    found.sort(key=lambda f: (f[0], f[1]))
    rows = [[rule, inst, str(year), r4(v), r4(r), str(len(ev))] for rule, inst, v, r, ev in found]
    case_rows = [[rule, inst, ci, no] for rule, inst, _, _, ev in found for ci, no in sorted(ev)]
    return rows, case_rows
