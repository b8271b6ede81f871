"""bench: throughput and memory of the load, API, clearing and valuation paths (docs/bench.md).

Runs against the configured database (set DATABASE_URL to a PostgreSQL benchmark database; on
SQLite it warns and the figures say little about production). Each run loads a fresh region
(BN00001, BN00002, …) of --cases synthetic cases, all in the employee fund so that the annual
clearing is one pool of that size; the data is left in the database (use a dedicated database).

Every phase runs in its own process (`bench --phase …`, internal) so its peak memory is its own.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

PHASES = ("generate", "load", "reload", "rest", "clear", "monthly", "valuation", "copy", "monitoring", "benefits_settle", "benefits_counter", "planning")


class Command(BaseCommand):
    help = "Measure bundle load, REST submission, annual clearing and valuation rates; write a JSON report."

    def add_arguments(self, parser):
        parser.add_argument("--cases", type=int, default=1_000_000, help="cases in the benchmark pool (default 1000000)")
        parser.add_argument("--out", default="bench-results/bench.json", help="JSON report (default bench-results/bench.json)")
        parser.add_argument("--seed", type=int, default=2025)
        parser.add_argument("--year", type=int, default=2025)
        parser.add_argument("--rest-cases", type=int, default=20_000, help="cases submitted through the REST API (default 20000)")
        parser.add_argument("--benefit-claims", type=int, default=1_000_000,
                            help="special-outpatient claims settled in bulk, of a tenth as many patients (default 1000000)")
        parser.add_argument("--skip", action="append", default=[], choices=PHASES[1:], help="skip a phase (repeatable)")
        parser.add_argument("--no-analyze", action="store_true",
                            help="do not ANALYZE after the load (measures the first clearing on stale planner statistics)")
        # internal: one phase in a child process
        parser.add_argument("--phase", choices=PHASES, help="(internal)")
        parser.add_argument("--region", help="(internal)")
        parser.add_argument("--bundle", help="(internal)")
        parser.add_argument("--result", help="(internal)")
        parser.add_argument("--clearing-load", type=float, default=None, help="(internal)")
        parser.add_argument("--clearing-seconds", type=float, default=None, help="(internal)")
        parser.add_argument("--readme", default="README.md",
                            help="README whose figures table (between the bench markers) is regenerated from the report; '' for none")

    def handle(self, *args, **options):
        if options["phase"]:
            return self._child(options)
        return self._orchestrate(options)

    # --- one phase (child process) ----------------------------------------------------------------

    def _child(self, options) -> None:
        from demo import bench

        phase, region, year = options["phase"], options["region"], options["year"]
        if phase == "generate":
            figures = bench.measure_generation(out=Path(options["bundle"]), cases=options["cases"], seed=options["seed"], year=year, region=region)
        elif phase == "load":
            figures = bench.measure_load(bundle=Path(options["bundle"]), analyze=not options["no_analyze"], region=region)
        elif phase == "reload":
            figures = bench.measure_reload(bundle=Path(options["bundle"]), scratch=Path(options["bundle"]).parent)
        elif phase == "monthly":
            figures = bench.measure_monthly(region=region, fund="employee", year=year)
        elif phase == "rest":
            figures = bench.measure_rest(cases=options["rest_cases"], region=region)
        elif phase == "clear":
            figures = bench.measure_clearing(region=region, fund="employee", year=year)
        elif phase == "valuation":
            figures = bench.measure_valuation(region=region, fund="employee", year=year)
        elif phase == "planning":
            figures = bench.measure_planning(region=region, year=year, cases=options["cases"], seed=options["seed"],
                                             scratch=Path(options["bundle"]).parent)
        elif phase == "monitoring":
            figures = bench.measure_monitoring(region=region, fund="employee", year=year)
        elif phase == "benefits_settle":
            from demo import benefits_bench

            figures = benefits_bench.measure_settlement(claims=options["benefit_claims"], patients=max(1, options["benefit_claims"] // 10),
                                                        seed=options["seed"], year=year)
        elif phase == "benefits_counter":
            from demo import benefits_bench

            figures = benefits_bench.measure_counter(earlier=200, requests=200, year=year)
        else:
            figures = bench.measure_copy_ratio(region=region, fund="employee", year=year, clearing_load_seconds=options["clearing_load"],
                                               clearing_seconds=options["clearing_seconds"])
        Path(options["result"]).write_text(json.dumps(figures, default=str), encoding="utf-8")

    # --- the whole bench (parent) -------------------------------------------------------------------

    def _orchestrate(self, options) -> None:
        from demo import bench

        out = Path(options["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        database = bench.database_info()
        if database["vendor"] != "postgresql":
            self.stderr.write(self.style.WARNING(
                f"warning: the database is {database['vendor']} ({database['name']}); the targets are for PostgreSQL. "
                "Set DATABASE_URL=postgres://…/drg_bench for meaningful figures."))
        self.stdout.write(f"database: {database['vendor']} {database['name']}")
        started = time.perf_counter()
        call_command("migrate", interactive=False, verbosity=0)
        region = bench.next_bench_region()
        results: dict = {
            "cases": options["cases"], "seed": options["seed"], "year": options["year"], "region": region,
            "database": database, "targets": bench.TARGETS, "cpu_count": _cpu_count(),
        }
        self.stdout.write(f"region {region}: {options['cases']:,} cases, seed {options['seed']}, year {options['year']}")
        with tempfile.TemporaryDirectory(prefix="drg-bench-") as scratch:
            bundle = Path(scratch) / "bundle"
            common = ["--region", region, "--year", str(options["year"]), "--cases", str(options["cases"]),
                      "--seed", str(options["seed"]), "--bundle", str(bundle), "--rest-cases", str(options["rest_cases"]),
                      "--benefit-claims", str(options["benefit_claims"])]
            if options["no_analyze"]:
                common.append("--no-analyze")
            for phase in PHASES:
                if phase in options["skip"] or (phase in ("copy", "monitoring") and "clear" in options["skip"]):
                    continue
                extra = []
                if phase == "copy" and "clearing" in results:
                    load = results["clearing"].get("phases", {}).get("load")
                    if load is not None:
                        extra += ["--clearing-load", str(load)]
                    if results["clearing"].get("seconds") is not None:
                        extra += ["--clearing-seconds", str(results["clearing"]["seconds"])]
                figures = self._run_phase(phase, common + extra, Path(scratch))
                key = {"clear": "clearing", "copy": "copy_ratio"}.get(phase, phase)
                results[key] = figures
                self.stdout.write(f"  {key:<10} {_brief(figures)}")
                if "error" in figures and phase in ("generate", "load"):
                    raise CommandError(f"bench stopped: {phase} failed")
        results["seconds"] = round(time.perf_counter() - started, 1)
        from demo import benefits_bench

        results["verdicts"] = bench.verdicts(results) + benefits_bench.verdicts(results)
        out.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        if options["readme"]:
            from demo.figures import readme_update

            readme = Path(settings.BASE_DIR) / options["readme"]
            if readme_update(readme=readme, results=results):
                self.stdout.write(f"figures table regenerated in {readme}")
        self.stdout.write("")
        for line in results["verdicts"]:
            style = self.style.SUCCESS if "MET" in line else self.style.WARNING
            self.stdout.write(style(line))
        self.stdout.write(f"report: {out}  ({results['seconds']:.0f}s)")

    def _run_phase(self, phase: str, args: list[str], scratch: Path) -> dict:
        result = scratch / f"{phase}.json"
        argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "bench", "--phase", phase, "--result", str(result), *args]
        started = time.perf_counter()
        completed = subprocess.run(argv, cwd=settings.BASE_DIR, capture_output=True, text=True)
        wall = round(time.perf_counter() - started, 3)
        if completed.returncode or not result.exists():
            tail = (completed.stderr or completed.stdout).strip().splitlines()[-15:]
            return {"error": f"exit {completed.returncode}", "log": tail, "process_seconds": wall}
        figures = json.loads(result.read_text(encoding="utf-8"))
        figures["process_seconds"] = wall
        return figures


def _cpu_count() -> int | None:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def _brief(figures: dict) -> str:
    if "error" in figures:
        return "ERROR " + figures["error"] + (": " + figures["log"][-1] if figures.get("log") else "")
    if "skipped" in figures:
        return "skipped: " + figures["skipped"]
    parts = []
    for key in ("cases", "claims", "p50_ms", "p95_ms", "append_p95_ms", "late_p95_ms", "baseline_me_p95_ms", "load_average_1m", "rows", "seconds",
                "ratio_to_copy", "bare_copy_seconds", "result_bytes", "december_seconds", "ratio_clearing_to_copy", "cpu_cases_per_s",
                "cases_per_s", "new_cases_per_s", "unchanged_cases_per_s", "changed_cases_per_s", "peak_rss_mb", "analyze_seconds", "read_frame_seconds", "copy_seconds", "pool_cases_frame_seconds",
                "ratio_frame_to_copy", "ratio_clearing_load_to_copy"):
        if figures.get(key) is not None:
            value = figures[key]
            if isinstance(value, dict):
                continue
            parts.append(f"{key} {value:,}" if isinstance(value, int) else f"{key} {value}")
    if figures.get("phases"):
        parts.append("phases " + ", ".join(f"{k} {v}" for k, v in figures["phases"].items()))
    return "; ".join(parts)
