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
    "load_to_copy_ratio": 5.0,  # bundle_load ≤ 5× a bare COPY of the same cases.csv (first load and 1 % reload)
    "rest_cases_per_s": 5_000,
    "clearing_seconds": 30.0,
    "clearing_to_copy_ratio": 8.0,  # annual clearing end to end ≤ 8× a bare COPY (SELECT …) TO STDOUT of the pool
    "monthly_to_annual_ratio": 1.0,  # a cumulative month-12 run ≤ the annual run on the same cases
    "result_bytes_per_case": 40.0,  # stored case results of 12 monthly + the annual run, bytes per case valued
    "peak_mb": 2048.0,  # every phase
    "clearing_peak_mb": 2048.0,
    "valuation_cases_per_s": 1_500_000,
    "rate_setting_seconds": 20.0,
    "scenario_seconds": 15.0,
    "forecast_seconds": 1.0,
    "monitoring_seconds": 20.0,
}

# the typed, unindexed table a bare COPY of cases.csv goes into (what PostgreSQL itself costs)
CASES_CSV_TYPES = {
    "admission_date": "date", "discharge_date": "date", "total_cost": "numeric(14,2)", "self_pay": "numeric(14,2)",
    "tcm_cost": "numeric(14,2)", "tcm_treatment": "boolean", "surgery_grade": "smallint", "malignant_tumor_surgery": "boolean",
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


def _csv_header(csv_path: Path) -> list[str]:
    with open(csv_path, encoding="utf-8-sig") as handle:
        return handle.readline().strip().split(",")


def _typed_columns(header: list[str], types: dict[str, str]) -> str:
    """Column definitions for a table holding the CSV's columns (untyped ones as varchar)."""
    return ", ".join(f'"{name}" {types.get(name, "varchar(64)")}' for name in header)


def _copy_file(pg, csv_path: Path, target: str) -> float:
    """COPY a CSV file (with its header line) into `target` (a table, optionally with a column list); its seconds."""
    started = time.perf_counter()
    with open(csv_path, "rb") as source, pg.copy(f"COPY {target} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
        while block := source.read(1 << 20):
            copy.write(block)
    return time.perf_counter() - started


def _timed(pg, statements, params=None) -> dict[str, float]:
    """Run (name, sql) statements one after the other; the seconds of each by name."""
    steps = {}
    for name, sql in statements:
        started = time.perf_counter()
        pg.execute(sql, params)
        steps[name] = time.perf_counter() - started
    return steps


def _bare_copy(pg, csv_path: Path, table: str, types: dict[str, str]) -> float:
    """COPY one CSV file into a fresh temporary (unlogged, unindexed) table; returns the COPY's seconds."""
    pg.execute(f"DROP TABLE IF EXISTS {table}")
    pg.execute(f"CREATE TEMPORARY TABLE {table} ({_typed_columns(_csv_header(csv_path), types)})")
    seconds = _copy_file(pg, csv_path, table)
    pg.execute(f"DROP TABLE IF EXISTS {table}")
    return seconds


def bare_copy_seconds(csv_path: Path, repeat: int = 2) -> float | None:
    """Best time of a bare `COPY … FROM STDIN (FORMAT csv, HEADER)` of a cases.csv into a temporary
    (unlogged, unindexed) table typed like drg_case: the floor the loader is compared with."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor, cursor.connection.cursor() as pg:
        return min(_bare_copy(pg, csv_path, "bench_bare_cases", CASES_CSV_TYPES) for _ in range(repeat))


def bare_copy_bundle_seconds(bundle: Path, repeat: int = 2) -> float | None:
    """Best time of a bare COPY of every CSV file of the bundle, each into a temporary unindexed table
    of its own (cases.csv typed as above, the other files' columns as text): the floor of the whole
    bundle, which also holds claims, enrollments, screenings and catalogs besides the cases."""
    if connection.vendor != "postgresql":
        return None
    files = sorted(bundle.glob("*.csv"))
    with connection.cursor() as cursor, cursor.connection.cursor() as pg:
        return min(
            sum(_bare_copy(pg, file, f"bench_bare_{index}", CASES_CSV_TYPES if file.name == "cases.csv" else {})
                for index, file in enumerate(files))
            for _ in range(repeat)
        )


# What storing a first load's cases costs PostgreSQL at best: the region-year's cases in a table of
# their own, filled unindexed, then indexed (the partition way of issue 14). Each step as a bureau needs it.
FLOOR_STEPS = (
    ("insert", "INSERT INTO bench_floor_cases (case_no, fund, patient_id, admission_date, discharge_date, drg_code, "
               "total_cost, self_pay, discharge_status, tcm_treatment, tcm_cost, surgery_grade, malignant_tumor_surgery, "
               "created_at, updated_at, institution_id, region_id) "
               "SELECT s.case_no, s.fund, s.patient_id, s.admission_date, s.discharge_date, s.drg_code, s.total_cost, "
               "s.self_pay, s.discharge_status, s.tcm_treatment, s.tcm_cost, s.surgery_grade, s.malignant_tumor_surgery, "
               "now(), now(), i.id, i.region_id FROM bench_floor_staging s "
               "JOIN drg_institution i ON i.code = s.institution_code AND i.region_id = %(region)s"),
    ("primary_key", "ALTER TABLE bench_floor_cases ADD PRIMARY KEY (id)"),
    ("unique_key", "CREATE UNIQUE INDEX ON bench_floor_cases (institution_id, case_no)"),
    ("pool_index", "CREATE INDEX ON bench_floor_cases (region_id, fund, discharge_date)"),
    ("patient_index", "CREATE INDEX ON bench_floor_cases (patient_id)"),
    ("foreign_key", "ALTER TABLE bench_floor_cases ADD FOREIGN KEY (institution_id) REFERENCES drg_institution (id)"),
)
DIRECT_FLOOR_STEPS = (
    ("primary_key", "ALTER TABLE bench_floor_direct ADD PRIMARY KEY (id)"),
    ("unique_key", "CREATE UNIQUE INDEX ON bench_floor_direct (institution_code, case_no)"),
    ("pool_index", "CREATE INDEX ON bench_floor_direct (fund, discharge_date)"),
    ("patient_index", "CREATE INDEX ON bench_floor_direct (patient_id)"),
)


def load_floor(csv_path: Path, region: str) -> dict | None:
    """PostgreSQL's own cost of storing a first load's cases the cheapest durable way (docs/bench.md):
    the bare COPY of cases.csv into a typed temporary table, then `INSERT … SELECT` into a fresh,
    unindexed, WAL-logged table shaped like drg_case, then its primary key, (institution, case_no)
    unique index, pool/period index, patient index and institution foreign key, one after the other.
    Nothing is parsed or checked and the bundle's other files are left out. `direct`: the same file
    COPYed as it is into a durable table of its own columns, then the same keys (no loader stores
    the file durably and indexed for less). Rolled back afterwards."""
    if connection.vendor != "postgresql":
        return None
    from django.db import transaction

    from drg.models import Region

    region_id = Region.objects.get(code=region).pk
    header = _csv_header(csv_path)
    columns = _typed_columns(header, CASES_CSV_TYPES)
    with transaction.atomic(), connection.cursor() as cursor, cursor.connection.cursor() as pg:
        pg.execute(f"CREATE TEMPORARY TABLE bench_floor_staging ({columns})")
        pg.execute("CREATE TABLE bench_floor_cases (LIKE drg_case INCLUDING DEFAULTS INCLUDING IDENTITY)")
        steps = {"copy": _copy_file(pg, csv_path, "bench_floor_staging"), **_timed(pg, FLOOR_STEPS, {"region": region_id})}
        stored = pg.execute("SELECT count(*) FROM bench_floor_cases").fetchone()[0]
        # the floor of any first-load design: cases.csv COPYed as it is into a fresh WAL-logged table of
        # its own columns (no staging, no institution ids: keyed by institution code), then its keys
        pg.execute(f"CREATE TABLE bench_floor_direct (id bigint GENERATED BY DEFAULT AS IDENTITY, {columns})")
        names = ", ".join(f'"{name}"' for name in header)
        direct = {"copy_logged": _copy_file(pg, csv_path, f"bench_floor_direct ({names})"), **_timed(pg, DIRECT_FLOOR_STEPS)}
        transaction.set_rollback(True)
    return {**_rounded(steps), "cases": stored, "direct": _rounded(direct)}


def _rounded(steps: dict[str, float]) -> dict:
    return {"seconds": round(sum(steps.values()), 3), "steps": {k: round(v, 3) for k, v in steps.items()}}


def changed_bundle(*, bundle: Path, out: Path, every: int = 100) -> int:
    """A copy of `bundle` whose cases.csv has every `every`-th case's total_cost raised by 1.00 (the
    1 % reload); the other files are linked. Returns the number of changed rows."""
    import os

    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    for entry in bundle.iterdir():
        if entry.name != "cases.csv" and not (out / entry.name).exists():
            os.symlink(entry.resolve(), out / entry.name)
    frame = pd.read_csv(bundle / "cases.csv", dtype=str, keep_default_na=False)
    rows = frame.index[::every]
    cents = (pd.to_numeric(frame.loc[rows, "total_cost"]) * 100).round().astype("int64") + 100
    frame.loc[rows, "total_cost"] = (cents // 100).astype(str) + "." + (cents % 100).astype(str).str.zfill(2)
    frame.to_csv(out / "cases.csv", index=False, lineterminator="\n")
    return len(rows)


def measure_load(*, bundle: Path, analyze: bool = True, region: str | None = None) -> dict:
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
        "cases": n_cases, "created": cases.created, "updated": cases.updated, "seconds": round(seconds, 3),
        "cases_per_s": round(n_cases / seconds), "phases": {k: round(v, 3) for k, v in (report.timings or {}).items()},
        "write_phases": {k: round(v, 3) for k, v in (report.write_timings or {}).items()},
        "peak_rss_mb": peak_rss_mb(),
    }
    if analyze and connection.vendor == "postgresql":
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        figures["analyze_seconds"] = round(time.perf_counter() - started, 3)
    copy_seconds = bare_copy_seconds(bundle / "cases.csv")
    if copy_seconds:
        figures["bare_copy_seconds"] = round(copy_seconds, 3)
        figures["ratio_to_copy"] = round(seconds / copy_seconds, 2)
    bundle_copy_seconds = bare_copy_bundle_seconds(bundle)
    if bundle_copy_seconds:  # every CSV file of the bundle, not only cases.csv
        figures["bare_copy_bundle_seconds"] = round(bundle_copy_seconds, 3)
        figures["ratio_to_copy_bundle"] = round(seconds / bundle_copy_seconds, 2)
    floor = load_floor(bundle / "cases.csv", region) if region and copy_seconds else None
    if floor:  # what storing the cases alone would cost in a fresh partition, before any check (not a target)
        figures["floor"] = floor
        figures["floor_ratio_to_copy"] = round(floor["seconds"] / copy_seconds, 2)
        figures["direct_floor_ratio_to_copy"] = round(floor["direct"]["seconds"] / copy_seconds, 2)
    figures["peak_rss_mb"] = peak_rss_mb()
    return figures


def measure_reload(*, bundle: Path, scratch: Path) -> dict:
    """The same bundle again with 1 % of its cases changed (total_cost + 1.00): bundle_load against
    a bare COPY of the changed cases.csv."""
    changed = changed_bundle(bundle=bundle, out=scratch / "bundle-changed")
    figures = measure_load(bundle=scratch / "bundle-changed", analyze=False)
    figures["changed_rows"] = changed
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


def result_storage_bytes() -> int | None:
    """Bytes on disk of every table holding per-case results of runs (with indexes and TOAST)."""
    if connection.vendor != "postgresql":
        return None
    from settlement.selectors import CASE_RESULT_TABLES

    with connection.cursor() as cursor:
        cursor.execute("SELECT " + " + ".join(f"pg_total_relation_size('{table}')" for table in CASE_RESULT_TABLES))
        return int(cursor.fetchone()[0])


def _one_run(*, region_obj, fund: str, year: int, month: int | None, user) -> dict:
    from settlement.services import clearing_run_start

    before = result_storage_bytes()
    started = time.perf_counter()
    run = clearing_run_start(region=region_obj, fund=fund, year=year, month=month, user=user)
    seconds = time.perf_counter() - started
    after = result_storage_bytes()
    return {
        "run_id": run.pk, "month": month, "status": run.status, "cases": run.case_count, "seconds": round(seconds, 3),
        "cases_per_s": round(run.case_count / seconds) if seconds else None,
        "phases": dict(run.timings or {}), "point_value": (run.totals or {}).get("point_value"),
        "result_bytes": after - before if before is not None else None,
    }


def measure_clearing(*, region: str, fund: str, year: int) -> dict:
    """One annual clearing, end to end (start → stored draft), with the engine's own phase timings
    and the bytes its case results added on disk."""
    from common.users import system_user
    from drg.models import Region

    figures = _one_run(region_obj=Region.objects.get(code=region), fund=fund, year=year, month=None, user=system_user())
    figures["peak_rss_mb"] = peak_rss_mb()
    return figures


def measure_monthly(*, region: str, fund: str, year: int) -> dict:
    """Twelve cumulative monthly runs (January … December) of the pool, one after the other: time
    and bytes on disk of each; the December run values the same cases as the annual run."""
    from common.users import system_user
    from drg.models import Region

    from settlement.models import ClearingRun
    from settlement.services import clearing_run_finalize

    region_obj, user = Region.objects.get(code=region), system_user()
    runs = []
    for month in range(1, 13):
        runs.append(_one_run(region_obj=region_obj, fund=fund, year=year, month=month, user=user))
        # a month may run only once the month before is finalized (SETTLEMENT.md): finalized as the
        # bureau would, not timed
        started = time.perf_counter()
        clearing_run_finalize(run=ClearingRun.objects.get(pk=runs[-1]["run_id"]), system=True)
        runs[-1]["finalize_seconds"] = round(time.perf_counter() - started, 3)
    return {
        "runs": runs, "seconds": round(sum(r["seconds"] for r in runs), 3),
        "cases_valued": sum(r["cases"] for r in runs), "december_seconds": runs[-1]["seconds"],
        "result_bytes": sum(r["result_bytes"] or 0 for r in runs) if runs[0]["result_bytes"] is not None else None,
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
    best = best_cpu = float("inf")
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        value_cases(cases, catalog, scheme.valuation)
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    # wall time includes the moments other tenants of a shared VM hold the core; the CPU time of this
    # (single-threaded) process is what the code itself costs: both are reported
    return {"cases": len(cases), "seconds": round(best, 3), "cases_per_s": round(len(cases) / best) if best else None,
            "cpu_seconds": round(best_cpu, 3), "cpu_cases_per_s": round(len(cases) / best_cpu) if best_cpu else None,
            "read_frame_seconds": round(read_seconds, 3), "peak_rss_mb": peak_rss_mb()}


def measure_copy_ratio(*, region: str, fund: str, year: int, clearing_load_seconds: float | None,
                       clearing_seconds: float | None = None) -> dict:
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
    if clearing_seconds is not None:
        figures["clearing_seconds"] = clearing_seconds
        figures["ratio_clearing_to_copy"] = round(clearing_seconds / best_copy, 2) if best_copy else None
    figures["peak_rss_mb"] = peak_rss_mb()
    return figures


# --- verdicts -------------------------------------------------------------------------------------

def _load_apart(bundle: Path) -> None:
    """`load_bundle` in a process of its own: the history years are set-up, not a target, and their
    loads' memory is not the planning phase's."""
    import subprocess

    from django.conf import settings

    done = subprocess.run([sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "load_bundle", str(bundle)],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"load_bundle {bundle} failed: {done.stderr.strip()[-2000:]}")


def _drop_cases_discharged_after(bundle: Path, year: int) -> int:
    """Remove from a generated history bundle the cases it discharges after `year` (the generator's
    late stays of early January) and their special reviews: they would fall in the bench year, whose
    months the monthly phase has finalized by then, and be refused as late cases of a closed period."""
    import pandas as pd

    cases = pd.read_csv(bundle / "cases.csv", dtype=str, keep_default_na=False)
    late = cases["discharge_date"].str.slice(0, 4).astype(int) > year
    if not late.any():
        return 0
    gone = set(zip(cases.loc[late, "institution_code"], cases.loc[late, "case_no"]))
    cases[~late].to_csv(bundle / "cases.csv", index=False, lineterminator="\n")
    reviews_path = bundle / "special_reviews.csv"
    if reviews_path.exists():
        reviews = pd.read_csv(reviews_path, dtype=str, keep_default_na=False)
        keep = [key not in gone for key in zip(reviews["institution_code"], reviews["case_no"])]
        reviews[keep].to_csv(reviews_path, index=False, lineterminator="\n")
    return int(late.sum())


def measure_planning(*, region: str, year: int, cases: int, seed: int, scratch: Path) -> dict:
    """PLANNING.md: two earlier years of `cases` cases are generated and loaded into the bench region
    (not timed as targets); the previous year's annual run is cleared and finalized (the binding run
    and the forecast's season). Then, timed: the rate-setting for year + 1 over the three years, an
    unchanged and a changed annual scenario of the previous year's pool, and the forecast after a
    finalized monthly run of the bench year (the previous year's season recorded once after its annual
    finalization, timed apart as season_record_seconds)."""
    from common.users import system_user
    from drg.models import Region
    from exchange.synthetic import generate_bundle
    from planning import services
    from planning.models import Forecast, Season
    from settlement.choices import RunKind, RunStatus
    from settlement.models import ClearingRun
    from settlement.services import clearing_run_finalize, clearing_run_start

    region_obj = Region.objects.get(code=region)
    user = system_user()
    figures: dict = {}
    started = time.perf_counter()
    history = (year - 2, year - 1)
    for offset, past in enumerate(history):
        out = scratch / f"bundle-{past}"
        generate_bundle(out=out, cases=cases, seed=seed - 2 + offset, year=past, region=region, employee_share=1.0)
        _drop_cases_discharged_after(out, past)
        _load_apart(out)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    figures["history_load_seconds"] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    annual = clearing_run_finalize(run=clearing_run_start(region=region_obj, fund="employee", year=year - 1, user=user), user=user, system=True)
    figures["history_clear_seconds"] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    unchanged = services.scenario_create(region=region_obj, fund="employee", year=year - 1, month=None, name="bench: unchanged",
                                         changes={}, user=user, run_async=False)
    unchanged_seconds = time.perf_counter() - started
    started = time.perf_counter()
    changed = services.scenario_create(region=region_obj, fund="employee", year=year - 1, month=None, name="bench: growth −1 pt",
                                       changes={"budget": {"growth_rate": "0.01"}}, user=user, run_async=False)
    scenario_seconds = time.perf_counter() - started
    binding = {line.institution_id: (line.points, line.fund_payment, line.balance) for line in annual.lines.all()}
    same = {line.institution_id: (line.points, line.fund_payment, line.balance) for line in unchanged.lines.all()}
    figures["scenario"] = {
        "cases": annual.case_count, "seconds": round(scenario_seconds, 3), "unchanged_seconds": round(unchanged_seconds, 3),
        "phases": changed.timings, "unchanged_equals_binding": same == binding and unchanged.totals["point_value"] == annual.totals["point_value"],
        "point_value_binding": annual.totals["point_value"], "point_value_changed": changed.totals.get("point_value"),
        "status": changed.status, "error": changed.error,
    }

    Season.objects.filter(run=annual).delete()  # recorded on finalization (eager here): timed apart
    started = time.perf_counter()
    services.season_record(run_id=annual.pk)
    season_seconds = time.perf_counter() - started
    # the finalized run of month 6: the monthly phase's when it ran (a month may only start after the
    # one before it, SETTLEMENT.md §6), else one started here
    monthly = ClearingRun.objects.filter(region=region_obj, fund="employee", year=year, kind=RunKind.MONTHLY, month=6,
                                         status=RunStatus.FINALIZED).first()
    if monthly is None:
        monthly = clearing_run_finalize(run=clearing_run_start(region=region_obj, fund="employee", year=year, month=6, user=user),
                                        user=user, system=True)
    timings = []
    for label in ("first", "again"):
        Forecast.objects.filter(run=monthly).delete()
        started = time.perf_counter()
        forecast = services.forecast_after_run(run_id=monthly.pk)
        timings.append((label, time.perf_counter() - started))
    figures["forecast"] = {
        "month_cases": monthly.case_count, "seconds": round(timings[0][1], 3), "again_seconds": round(timings[1][1], 3),
        "season_record_seconds": round(season_seconds, 3),
        "season": forecast.season_source, "point_value_estimate": str(forecast.point_value), "run_point_value": str(forecast.run_point_value),
    }

    started = time.perf_counter()
    result = services.rate_setting_compute(region=region_obj, year=year + 1, reference_years=(year - 2, year - 1, year), weights=(2, 3, 5))
    services.rate_setting_write(result=result, out_dir=scratch / "rate_setting")
    seconds = time.perf_counter() - started
    summary = result.summary()
    figures["rate_setting"] = {"seconds": round(seconds, 3), "cases_kept": summary["cases"], "trimmed": summary["trimmed"],
                               "groups": summary["groups"], "all_case_avg_cost": summary["all_case_avg_cost"]}
    figures["peak_rss_mb"] = peak_rss_mb()
    return figures


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
    floor_hint = (f"; storing the cases alone in a fresh indexed table costs {load['floor_ratio_to_copy']}× (floor)"
                  if load.get("floor_ratio_to_copy") else "")
    if load.get("direct_floor_ratio_to_copy"):
        floor_hint += f", the file COPYed as it is into a durable indexed table {load['direct_floor_ratio_to_copy']}×"
    check("bundle load / bare COPY (first load)", load.get("ratio_to_copy"), TARGETS["load_to_copy_ratio"], False, "×",
          _slowest(load.get("phases", {}), "loader phase") + floor_hint)
    reload = results.get("reload", {})
    check("bundle load / bare COPY (reload, 1 % changed)", reload.get("ratio_to_copy"), TARGETS["load_to_copy_ratio"], False, "×",
          _slowest(reload.get("phases", {}), "loader phase"))
    rest = results.get("rest", {})
    check("REST bulk submission (new cases)", rest.get("cases_per_s"), TARGETS["rest_cases_per_s"], True, "cases/s")
    for mode in ("unchanged", "changed"):
        if rest.get(f"{mode}_cases_per_s") is not None:
            check(f"REST bulk submission ({mode} cases)", rest[f"{mode}_cases_per_s"], TARGETS["rest_cases_per_s"], True, "cases/s")
    clearing = results.get("clearing", {})
    phases = {k: v for k, v in clearing.get("phases", {}).items() if k != "total"}
    check("annual clearing", clearing.get("seconds"), TARGETS["clearing_seconds"], False, "s",
          _slowest(phases, "clearing phase"))
    check("annual clearing / bare COPY out of the pool", results.get("copy_ratio", {}).get("ratio_clearing_to_copy"),
          TARGETS["clearing_to_copy_ratio"], False, "×", _slowest(phases, "clearing phase"))
    monthly = results.get("monthly", {})
    ratio = None
    if monthly.get("december_seconds") and clearing.get("seconds"):
        ratio = round(monthly["december_seconds"] / clearing["seconds"], 2)
    check("monthly run (December, cumulative) / annual run", ratio, TARGETS["monthly_to_annual_ratio"], False, "×")
    per_case = None
    if monthly.get("result_bytes") is not None and clearing.get("result_bytes") is not None:
        cases = monthly.get("cases_valued", 0) + clearing.get("cases", 0)
        per_case = round((monthly["result_bytes"] + clearing["result_bytes"]) / cases, 1) if cases else None
    check("case results on disk, 12 monthly + annual runs", per_case, TARGETS["result_bytes_per_case"], False, "bytes/case")
    peaks = {key: figures.get("peak_rss_mb") for key, figures in results.items()
             if isinstance(figures, dict) and figures.get("peak_rss_mb") is not None}
    if peaks:
        name = max(peaks, key=peaks.get)
        check(f"peak memory of any phase ({name})", peaks[name], TARGETS["peak_mb"], False, "MiB")
    valuation = results.get("valuation", {})
    check("valuation alone (wall)", valuation.get("cases_per_s"), TARGETS["valuation_cases_per_s"], True, "cases/s")
    check("valuation alone (per CPU-second)", valuation.get("cpu_cases_per_s"), TARGETS["valuation_cases_per_s"], True, "cases/s")
    planning = results.get("planning", {})
    if planning and "error" not in planning:
        check("rate-setting, 3 years", planning["rate_setting"]["seconds"], TARGETS["rate_setting_seconds"], False, "s")
        check("annual scenario", planning["scenario"]["seconds"], TARGETS["scenario_seconds"], False, "s")
        check("forecast after a monthly run", planning["forecast"]["seconds"], TARGETS["forecast_seconds"], False, "s")
    monitoring = results.get("monitoring", {})
    check("monitoring (indicators + 5 screens, read included)", monitoring.get("seconds"), TARGETS["monitoring_seconds"], False, "s",
          _slowest(monitoring.get("phases", {}), "monitoring phase"))
    return lines


def _slowest(phases: dict, what: str) -> str:
    if not phases:
        return ""
    name, seconds = max(phases.items(), key=lambda kv: kv[1])
    return f"slowest {what}: {name} {seconds:.1f}s"
