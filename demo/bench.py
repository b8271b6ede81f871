"""Measurement helpers for `manage.py bench` (docs/bench.md).

Each measure_* function runs one phase against the configured database and returns a plain dict of
figures (JSON-ready). The bench command runs every phase in its own process so that the peak
memory reported for a phase (`peak_rss_mb`, from getrusage) is that phase's own.
"""
from __future__ import annotations

import datetime as dt
import resource
import sys
import time
from pathlib import Path

from django.db import connection

TARGETS = {
    "load_cases_per_s": 50_000,
    "rest_cases_per_s": 5_000,
    "clearing_seconds": 30.0,
    "clearing_peak_mb": 2048.0,
    "valuation_cases_per_s": 1_000_000,
    "monitoring_seconds": 20.0,
}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def database_info() -> dict:
    settings_dict = connection.settings_dict
    return {"vendor": connection.vendor, "name": str(settings_dict.get("NAME", "")), "host": settings_dict.get("HOST") or ""}


def next_bench_region(prefix: str = "BN") -> str:
    """A region code not used yet (BN00001, BN00002, …): each bench run loads a fresh region."""
    from drg.models import Region

    used = set(Region.objects.filter(code__startswith=prefix).values_list("code", flat=True))
    number = 1
    while f"{prefix}{number:05d}" in used:
        number += 1
    return f"{prefix}{number:05d}"


# --- phases ---------------------------------------------------------------------------------------

def measure_generation(*, out: Path, cases: int, seed: int, year: int, region: str) -> dict:
    from exchange.synthetic import generate_bundle

    started = time.perf_counter()
    summary = generate_bundle(out=out, cases=cases, seed=seed, year=year, region=region, employee_share=1.0)
    seconds = time.perf_counter() - started
    return {"cases": summary.rows["cases.csv"], "seconds": round(seconds, 3),
            "cases_per_s": round(summary.rows["cases.csv"] / seconds), "peak_rss_mb": peak_rss_mb()}


def measure_load(*, bundle: Path, analyze: bool = True) -> dict:
    """bundle_load of the whole bundle; then (PostgreSQL, `analyze`) ANALYZE, timed apart.

    Without fresh planner statistics the first clearing after a bulk load joins the special reviews
    by a nested loop over every case (42 s for 200,000 cases instead of < 1 s), so the bench
    analyzes as an operator would after a load (autovacuum does it only later)."""
    from exchange.bundle import bundle_load

    started = time.perf_counter()
    report = bundle_load(path=bundle)
    seconds = time.perf_counter() - started
    cases = report.files["cases.csv"]
    n_cases = cases.created + cases.updated + cases.unchanged
    figures = {
        "cases": n_cases, "created": cases.created, "seconds": round(seconds, 3),
        "cases_per_s": round(n_cases / seconds), "phases": {k: round(v, 3) for k, v in (report.timings or {}).items()},
        "peak_rss_mb": peak_rss_mb(),
    }
    if analyze and connection.vendor == "postgresql":
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        figures["analyze_seconds"] = round(time.perf_counter() - started, 3)
    return figures


def measure_rest(*, cases: int, region: str) -> dict:
    """REST bulk submission rate through the whole API stack (demo/api_bench.py)."""
    from demo.api_bench import measure_submission_rate

    started = time.perf_counter()
    figures = dict(measure_submission_rate(cases=cases))  # in a throwaway region of its own
    figures["wall_seconds"] = round(time.perf_counter() - started, 3)
    # the headline rate is the submission of new cases (the API also reports unchanged / changed passes)
    figures.setdefault("cases_per_s", figures.get("new_cases_per_s"))
    figures["peak_rss_mb"] = peak_rss_mb()
    return figures


def measure_clearing(*, region: str, fund: str, year: int) -> dict:
    """One annual clearing, end to end (start → stored draft), with the engine's own phase timings."""
    from common.users import system_user
    from drg.models import Region
    from settlement.services import clearing_run_start

    region_obj = Region.objects.get(code=region)
    user = system_user()
    started = time.perf_counter()
    run = clearing_run_start(region=region_obj, fund=fund, year=year, month=None, user=user)
    seconds = time.perf_counter() - started
    return {
        "run_id": run.pk, "status": run.status, "cases": run.case_count, "seconds": round(seconds, 3),
        "cases_per_s": round(run.case_count / seconds) if seconds else None,
        "phases": dict(run.timings or {}), "point_value": (run.totals or {}).get("point_value"),
        "peak_rss_mb": peak_rss_mb(),
    }


def _pool_inputs(region: str, fund: str, year: int):
    from drg.models import Region
    from settlement import selectors

    region_obj = Region.objects.get(code=region)
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    started = time.perf_counter()
    cases = selectors.pool_cases_frame(region_id=region_obj.pk, fund=fund, start=start, end=end)
    read_seconds = time.perf_counter() - started
    catalog = selectors.pool_catalog(region_id=region_obj.pk, year=year)
    scheme = selectors.pool_scheme(region_id=region_obj.pk, year=year)
    return region_obj, cases, catalog, scheme, read_seconds


def measure_valuation(*, region: str, fund: str, year: int, repeat: int = 5) -> dict:
    """drg.domain.valuation.value_cases alone on the pool's cases (best of `repeat`)."""
    from drg.domain.valuation import value_cases

    _, cases, catalog, scheme, read_seconds = _pool_inputs(region, fund, year)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        value_cases(cases, catalog, scheme.valuation)
        best = min(best, time.perf_counter() - started)
    return {"cases": len(cases), "seconds": round(best, 3), "cases_per_s": round(len(cases) / best) if best else None,
            "read_frame_seconds": round(read_seconds, 3), "peak_rss_mb": peak_rss_mb()}


def measure_copy_ratio(*, region: str, fund: str, year: int, clearing_load_seconds: float | None) -> dict:
    """The clearing's read of the pool's cases against a bare COPY (SELECT …) TO STDOUT of the same rows."""
    if connection.vendor != "postgresql":
        return {"skipped": f"needs PostgreSQL (database is {connection.vendor})"}
    from drg.models import Region
    from settlement.selectors import pool_cases_frame

    region_id = Region.objects.get(code=region).pk
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    sql = """
        SELECT c.id, c.case_no, c.institution_id, c.patient_id, c.admission_date, c.discharge_date,
               c.drg_code, c.total_cost, c.self_pay, c.tcm_cost, c.discharge_status, c.tcm_treatment,
               sr.approved_cost
        FROM drg_case c
        LEFT JOIN drg_specialreview sr ON sr.case_id = c.id AND sr.status = 'approved'
        WHERE c.region_id = %s AND c.fund = %s AND c.discharge_date >= %s AND c.discharge_date <= %s
    """
    with connection.cursor() as cursor:
        raw = cursor.connection
        with raw.cursor() as pg:
            query = pg.mogrify(sql, [region_id, fund, start, end])
            best_copy, size = float("inf"), 0
            for _ in range(2):
                started = time.perf_counter()
                size = 0
                with pg.copy(f"COPY ({query}) TO STDOUT") as copy:
                    for block in copy:
                        size += len(block)
                best_copy = min(best_copy, time.perf_counter() - started)
    best_frame = float("inf")
    rows = 0
    for _ in range(2):
        started = time.perf_counter()
        rows = len(pool_cases_frame(region_id=region_id, fund=fund, start=start, end=end))
        best_frame = min(best_frame, time.perf_counter() - started)
    figures = {
        "rows": rows, "copy_seconds": round(best_copy, 3), "copy_mb": round(size / 2**20, 1),
        "pool_cases_frame_seconds": round(best_frame, 3),
        "ratio_frame_to_copy": round(best_frame / best_copy, 2) if best_copy else None,
    }
    if clearing_load_seconds is not None:
        figures["clearing_load_seconds"] = clearing_load_seconds
        figures["ratio_clearing_load_to_copy"] = round(clearing_load_seconds / best_copy, 2) if best_copy else None
    return figures


# --- verdicts -------------------------------------------------------------------------------------

def measure_monitoring(*, region: str, fund: str, year: int) -> dict:
    """Indicators and all five screening rules over the pool's annual run (monitoring/bench.py)."""
    from monitoring.bench import measure_monitoring as measure

    figures = measure(region=region, fund=fund, year=year)
    figures["peak_rss_mb"] = peak_rss_mb()
    return figures


def verdicts(results: dict) -> list[str]:
    """One line per target: met or missed, and for a missed clearing target the phase that holds it back."""
    lines = []

    def check(label: str, value, target, higher_is_better: bool, unit: str, hint: str = "") -> None:
        if value is None:
            lines.append(f"{label}: not measured")
            return
        met = value >= target if higher_is_better else value <= target
        sign = "≥" if higher_is_better else "≤"
        lines.append(f"{label}: {value:,.1f} {unit} (target {sign} {target:,} {unit}) {'MET' if met else 'MISSED'}"
                     + ("" if met or not hint else f" — {hint}"))

    load = results.get("load", {})
    check("bundle load", load.get("cases_per_s"), TARGETS["load_cases_per_s"], True, "cases/s",
          _slowest(load.get("phases", {}), "loader phase"))
    rest = results.get("rest", {})
    check("REST bulk submission (new cases)", rest.get("cases_per_s"), TARGETS["rest_cases_per_s"], True, "cases/s")
    for mode in ("unchanged", "changed"):
        if rest.get(f"{mode}_cases_per_s") is not None:
            check(f"REST bulk submission ({mode} cases)", rest[f"{mode}_cases_per_s"], TARGETS["rest_cases_per_s"], True, "cases/s")
    clearing = results.get("clearing", {})
    phases = {k: v for k, v in clearing.get("phases", {}).items() if k != "total"}
    check("annual clearing", clearing.get("seconds"), TARGETS["clearing_seconds"], False, "s",
          _slowest(phases, "clearing phase"))
    check("clearing peak memory", clearing.get("peak_rss_mb"), TARGETS["clearing_peak_mb"], False, "MiB")
    valuation = results.get("valuation", {})
    check("valuation alone", valuation.get("cases_per_s"), TARGETS["valuation_cases_per_s"], True, "cases/s")
    monitoring = results.get("monitoring", {})
    check("monitoring (indicators + 5 screens, read included)", monitoring.get("seconds"), TARGETS["monitoring_seconds"], False, "s",
          _slowest(monitoring.get("phases", {}), "monitoring phase"))
    return lines


def _slowest(phases: dict, what: str) -> str:
    if not phases:
        return ""
    name, seconds = max(phases.items(), key=lambda kv: kv[1])
    return f"slowest {what}: {name} {seconds:.1f}s"
