"""demo: a whole year of a synthetic region, end to end, on the embedded default (docs/demo.md).

Generates a region (exchange/synthetic.py), loads it (exchange.bundle.bundle_load), runs the twelve monthly
clearings of each fund (each finalized by the batch system user before the next) and the annual
clearing, prints a summary and writes statements and incentives under --out.

The demo always works on its own fresh SQLite database, var/demo.sqlite3, whatever DATABASE_URL
says: the command re-runs itself in a child process pointed at that file (deleted first), so a
re-run starts clean and never touches real data.
"""
from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

DEMO_DB_NAME = "demo.sqlite3"
CHILD_FLAG = "--in-demo-database"


class Command(BaseCommand):
    help = "Generate, load and clear a synthetic region for a year; print a summary; write statements."

    def add_arguments(self, parser):
        parser.add_argument("--cases", type=int, default=100_000, help="cases to generate (default 100000)")
        parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
        parser.add_argument("--seed", type=int, default=2025)
        parser.add_argument("--year", type=int, default=2025)
        parser.add_argument("--region", default=None, help="region code (default: the fictional demo county 339901)")
        parser.add_argument("--history", type=int, default=2, help="earlier years generated and cleared before --year "
                                                                  "(rate-setting, seasonality, forecast track record; default 2)")
        parser.add_argument(CHILD_FLAG, dest="in_demo_database", action="store_true", help="(internal)")

    def handle(self, *args, **options):
        if not options["in_demo_database"]:
            return self._spawn(options)
        _Demo(self, options).run()

    # --- parent: a fresh database file, then the same command in a child process ------------------

    def _spawn(self, options) -> None:
        database = Path(settings.VAR_DIR) / DEMO_DB_NAME
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "demo", CHILD_FLAG,
                "--cases", str(options["cases"]), "--out", str(options["out"]), "--seed", str(options["seed"]),
                "--year", str(options["year"]), "--history", str(options["history"])]
        if options["region"]:
            argv += ["--region", options["region"]]
        env = {**_environment(), "DATABASE_URL": f"sqlite:///{database}", "CELERY_BROKER_URL": "", "CELERY_RESULT_BACKEND": ""}
        self.stdout.write(f"demo database: {database} (fresh)")
        self.stdout.flush()
        completed = subprocess.run(argv, env=env, cwd=settings.BASE_DIR)
        if completed.returncode:
            raise CommandError(f"demo failed (exit {completed.returncode})")


def _migrations_key() -> str:
    """A digest of every migration file: the migrated template is reused only while it matches."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(Path(settings.BASE_DIR).glob("*/migrations/*.py")):
        digest.update(str(path.relative_to(settings.BASE_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _migrate_from_template() -> str:
    """Migrate the fresh demo database, starting from a copy of the last migrated one
    (var/demo-template.sqlite3) when the migrations have not changed since: saves ~20 s a run."""
    import shutil

    from django.db import connection, connections

    database = Path(connection.settings_dict["NAME"])
    template = database.with_name("demo-template.sqlite3")
    key_file = template.with_suffix(".key")
    key = _migrations_key()
    reused = template.exists() and key_file.exists() and key_file.read_text() == key
    if reused:
        connections.close_all()
        shutil.copyfile(template, database)
    call_command("migrate", interactive=False, verbosity=0)
    if not reused:
        connections.close_all()  # checkpoints the WAL into the file before it is copied
        shutil.copyfile(database, template)
        key_file.write_text(key)
    return "migrated (from the template of the same migrations)" if reused else "migrated; template saved for the next run"


def _environment() -> dict[str, str]:
    import os  # the child inherits the environment; settings stay the only reader of it

    return dict(os.environ)


class _Demo:
    def __init__(self, command: BaseCommand, options: dict):
        self.cmd = command
        self.out = Path(options["out"])
        self.cases = options["cases"]
        self.seed = options["seed"]
        self.year = options["year"]
        self.region_code = options["region"]
        self.history = max(0, min(int(options.get("history") or 0), 5))
        self.steps: list[tuple[str, float]] = []

    def say(self, text: str = "") -> None:
        self.cmd.stdout.write(text)
        self.cmd.stdout.flush()

    @contextmanager
    def step(self, title: str):
        self.say(f"\n== {title}")
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        self.steps.append((title, seconds))
        self.say(f"   done in {seconds:.1f}s")

    def run(self) -> None:
        import logging

        from tqdm import tqdm

        # Celery runs eagerly here: the forecast and season tasks after each finalization would log a
        # line each between the progress bars
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)

        from common.users import system_user
        from exchange.bundle import BundleInvalid, bundle_load
        from drg.models import Region
        from exchange.synthetic import generate_bundle
        from monitoring.receivers import refresh_on_finalize_paused
        from settlement.services import clearing_run_finalize, clearing_run_start

        started = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        with self.step("migrate the demo database"):
            self.say("   " + _migrate_from_template())
        user = system_user()

        years = list(range(self.year - self.history, self.year + 1))
        region = None
        all_runs: dict[int, dict[str, dict]] = {}
        for offset, year in enumerate(years):
            bundle_dir = self.out / "bundle" if year == self.year else self.out / "history" / f"bundle-{year}"
            seed = self.seed if year == self.year else self.seed - (self.year - year)
            with self.step(f"generate a region: {self.cases:,} cases, seed {seed}, year {year}"):
                # the monitoring patterns are planted in the demo year only (its screening is checked against them)
                summary = generate_bundle(out=bundle_dir, cases=self.cases, seed=seed, year=year, region=self.region_code,
                                          plant="demo" if year == self.year else None)
                self.say(f"   {bundle_dir}: " + ", ".join(f"{name.removesuffix('.csv')} {n:,}" for name, n in summary.rows.items()))
                if year == self.year:
                    self.say(f"   planted monitoring patterns (ground truth): {summary.planted}")

            with self.step(f"load the {year} bundle (bundle_load)"):
                bar = tqdm(total=None, desc="   loading", unit=" step", leave=False, file=sys.stdout)
                try:
                    report = bundle_load(path=bundle_dir, progress=lambda message: (bar.set_postfix_str(message[-60:]), bar.update(1)))
                except BundleInvalid as exc:
                    for error in exc.errors[:20]:
                        self.say(f"   {error}")
                    raise CommandError(f"the generated bundle did not load: {len(exc.errors)} bad rows") from exc
                finally:
                    bar.close()
                cases_rate = summary.rows["cases.csv"] / max(report.seconds, 1e-9)
                self.say(f"   {summary.rows['cases.csv']:,} cases in {report.seconds:.1f}s ({cases_rate:,.0f} cases/s); "
                         + ", ".join(f"{k} {v:.1f}s" for k, v in (report.timings or {}).items()))
            region = Region.objects.get(code=summary.region)

            runs: dict[str, dict] = {}
            with self.step(f"{year}: monthly clearings (12 per fund, each finalized; each followed by the year-end forecast) "
                           "and the annual clearing"):
                pools = [(fund, month) for fund in ("employee", "resident") for month in [*range(1, 13), None]]
                with refresh_on_finalize_paused():  # the monitoring step refreshes each pool's indicators once
                    for fund, month in tqdm(pools, desc="   clearing", unit=" run", file=sys.stdout, leave=False):
                        run = clearing_run_start(region=region, fund=fund, year=year, month=month, user=user)
                        run = clearing_run_finalize(run=run, user=user, system=True)
                        runs.setdefault(fund, {})[month or "annual"] = run
            all_runs[year] = runs
        runs = all_runs[self.year]

        self.summary(region, runs)
        self.benefits_summary(region)
        if self.history:
            with self.step(f"rate-setting for {self.year + 1} from {years[0]}–{self.year} (PLANNING.md §1)"):
                self.rate_setting(region, years)
            with self.step("year-end forecast error by month (PLANNING.md §3, estimates)"):
                self.forecast_errors(region, years[1:])

        with self.step("monitoring: indicators and screening of each pool (MONITORING.md)"):
            self.monitoring(region, summary.planted)

        with self.step(f"write statements and incentives under {self.out}"):
            written = self.write_outputs(region, runs)
            self.say(f"   {written} files")

        from demo.users import demo_users_create

        with self.step("demo users for the admin (one per role)"):
            users = demo_users_create()

        total = time.perf_counter() - started
        self.say("\n== time per step")
        for title, seconds in self.steps:
            self.say(f"   {seconds:7.1f}s  {title}")
        self.say(f"   {total:7.1f}s  total")
        self.cmd.stdout.write(self.cmd.style.SUCCESS(f"demo finished: outputs in {self.out.resolve()}"))
        self.say("\n== open it in the admin: make serve-demo, then http://127.0.0.1:8000/admin/")
        for role, role_name, username, password in users:
            self.say(f"   {role:<9} {role_name}  user {username:<7} password {password}")

    # --- summary ----------------------------------------------------------------------------------

    def summary(self, region, runs: dict[str, dict]) -> None:
        from budget.services import budget_current

        self.say(f"\n== {region.code} {region.name}, {self.year}")
        for fund, by_period in runs.items():
            budget = budget_current(region=region, fund=fund, year=self.year)
            annual = by_period["annual"]
            t = annual.totals
            self.say(f"\n-- {fund}: budget total {_money(budget.total)}, reserve {_money(budget.reserve)}, "
                     f"inpatient {_money(budget.inpatient)}")
            self.say(f"   DRG budget B {_money(t['drg_budget'])} (after special outpatient {_money(t['special_outpatient'])}); "
                     f"fund claims F {_money(t['fund_claims'])}; "
                     f"{'surplus' if Decimal(t['drg_budget']) >= Decimal(t['fund_claims']) else 'overrun'} "
                     f"{_pct((Decimal(t['drg_budget']) - Decimal(t['fund_claims'])) / Decimal(t['drg_budget']))}")
            self.say(f"   distributed A {_money(t['distributed'])}; from reserve {_money(t.get('from_reserve', '0'))}; "
                     f"points {Decimal(t['points']):,.4f}; annual point value {t['point_value']} yuan/point; {annual.case_count:,} cases")
            self.say("   month  cases     budget to date     fund claims   balance  point value")
            for month in range(1, 13):
                run = by_period[month]
                m = run.totals
                budget_to_date, claims = Decimal(m["budget_to_date"]), Decimal(m["fund_claims"])
                self.say(f"   {month:>5}  {run.case_count:>7,}  {_money(budget_to_date):>17}  {_money(claims):>14}  "
                         f"{_pct((budget_to_date - claims) / budget_to_date):>7}  {Decimal(m['point_value']):.4f}")
            lines = list(annual.lines.select_related("institution").order_by("surplus", "institution__code"))
            overruns = [line for line in lines if line.surplus is not None and line.surplus < 0][:5]
            surpluses = [line for line in reversed(lines) if line.surplus is not None and line.surplus > 0][:5]
            self.say("   five largest surpluses (结余留用):")
            for line in surpluses:
                self.say(f"     {line.institution.code} {_pad(line.institution.name, 26)} {_money(line.surplus):>15}  "
                         f"({_pct(line.surplus / line.itemized_fund) if line.itemized_fund else '-'} of its claims)")
            self.say("   five largest overruns (超支):")
            for line in overruns:
                self.say(f"     {line.institution.code} {_pad(line.institution.name, 26)} {_money(line.surplus):>15}  "
                         f"({_pct(line.surplus / line.itemized_fund) if line.itemized_fund else '-'} of its claims)")

    # --- planning: rate-setting and the forecast's track record ------------------------------------

    def rate_setting(self, region, years: list[int]) -> None:
        from planning.services import rate_setting_compute, rate_setting_write

        weights = (2, 3, 5) if len(years) == 3 else tuple(range(1, len(years) + 1))
        result = rate_setting_compute(region=region, year=self.year + 1, reference_years=tuple(years), weights=weights)
        rate_setting_write(result=result, out_dir=self.out / "rate_setting")
        summary = result.summary()
        self.say(f"   A (全部病例次均费用) = {summary['all_case_avg_cost']} from {','.join(map(str, years))}, weights "
                 f"{':'.join(map(str, weights))}; groups set {summary['groups']['set']}, too few cases "
                 f"{summary['groups']['too_few_cases']}, no cases {summary['groups']['no_cases']}; "
                 f"cases kept {summary['cases']:,}, trimmed by the IQR rule {summary['trimmed']:,}")
        changed = result.report[result.report["change"].notna()].copy()
        changed["size"] = changed["change"].map(abs)
        self.say("   largest changes of base points:")
        for row in changed.sort_values(["size", "code"], ascending=[False, True]).head(8).itertuples():
            self.say(f"     {row.code:<6} {row.kind:<9} {row.previous_points:>10} -> {row.points:>10}  ({row.change:+.2%}, {row.cases:,} cases)")
        self.say(f"   files: {self.out / 'rate_setting'} (drg_groups.csv, scheme.json, rate_setting.csv)")

    def forecast_errors(self, region, years: list[int]) -> None:
        from planning.services import forecast_backtest

        for year in years:
            for fund in ("employee", "resident"):
                rows = forecast_backtest(region=region, fund=fund, year=year)
                actual = rows[0]["actual"] if rows else "—"
                self.say(f"   {year} {fund}: annual V {actual}; season from "
                         f"{'the previous year' if rows and rows[0]['season_source'] == 'previous_year' else 'm/12 (no previous year)'}")
                self.say("     month " + " ".join(f"{row['month']:>6}" for row in rows))
                self.say("     V̂     " + " ".join(f"{float(row['forecast']):>6.2f}" for row in rows))
                self.say("     error " + " ".join(f"{float(row['error']) * 100:>5.2f}%" for row in rows))

    def monitoring(self, region, planted) -> None:
        """Screen each pool's binding annual run, record the findings for the admin's queue and
        print them beside the planted ground truth."""
        import csv

        from monitoring.services import indicators_refresh, screening_run_record
        from monitoring.models import Finding

        truth = {}
        if planted:
            with open(planted, newline="", encoding="utf-8") as handle:
                truth = {(row["rule"], row["institution_code"]) for row in csv.DictReader(handle)}
        for fund in ("employee", "resident"):
            indicators_refresh(region_id=region.pk, fund=fund, year=self.year)
            screening = screening_run_record(region=region, fund=fund, year=self.year)
            findings = Finding.objects.filter(screening=screening).select_related("institution").order_by("rule", "institution__code")
            self.say(f"   {fund}: {screening.finding_count} findings in the review queue")
            for finding in findings:
                mark = "planted" if (finding.rule, finding.institution.code) in truth else "not planted"
                self.say(f"     {finding.rule:<24} {finding.institution.code} {_pad(finding.institution.name, 22)} "
                         f"value {finding.value} vs {finding.reference}  {finding.case_count:>5,} cases  ({mark})")
            found = {(f.rule, f.institution.code) for f in findings}
            missed = sorted(truth - found)
            self.say(f"     planted and flagged {len(truth & found)}/{len(truth)}" + (f"; missed {missed}" if missed else ""))

    # --- outputs ----------------------------------------------------------------------------------

    def write_outputs(self, region, runs: dict[str, dict]) -> int:
        from tqdm import tqdm

        from exchange.exports import clearing_export

        count = 0
        tasks = []
        for fund, by_period in runs.items():
            for period, run in by_period.items():
                folder = self.out / "clearing" / fund / ("annual" if period == "annual" else f"month-{period:02d}")
                tasks.append((run, folder))
        for run, folder in tqdm(tasks, desc="   exports", unit=" run", file=sys.stdout, leave=False):
            count += len(clearing_export(run=run, out_dir=folder))
        count += self._statements(region, runs)
        count += self._incentives(region)
        count += self._benefits(region)
        return count

    def _statements(self, region, runs: dict[str, dict]) -> int:
        try:
            from settlement import statements
        except ImportError:  # the statements module is optional: the export_clearing CSVs are written anyway
            self.say("   settlement/statements.py not available: CSV exports only")
            return 0
        folder = self.out / "statements"
        folder.mkdir(parents=True, exist_ok=True)
        count = 0
        for fund, by_period in runs.items():
            annual = by_period["annual"]
            for ext, render in (("csv", statements.statement_csv), ("xlsx", statements.statement_xlsx)):
                (folder / statements.statement_filename(run=annual, ext=ext)).write_bytes(render(run=annual))
                count += 1
            december = by_period[12]
            (folder / statements.statement_filename(run=december, ext="xlsx")).write_bytes(statements.statement_xlsx(run=december))
            count += 1
        # One CSV statement per institution and pool; Excel (with the case list) for two samples only:
        # the TCM hospital (中治率 uplift) and the busiest township centre, as Excel takes ~1 ms a case.
        per_institution = folder / "institutions"
        per_institution.mkdir(exist_ok=True)
        for fund, by_period in runs.items():
            annual = by_period["annual"]
            lines = list(annual.lines.select_related("institution").order_by("institution__code"))
            for line in lines:
                name = statements.statement_filename(run=annual, institution=line.institution, ext="csv")
                (per_institution / name).write_bytes(statements.statement_csv(run=annual, institution=line.institution))
                count += 1
            samples = [
                max((x for x in lines if x.institution.category == "tcm" and x.institution.level >= 2), key=lambda x: x.case_count, default=None),
                max((x for x in lines if x.institution.category == "primary"), key=lambda x: x.case_count, default=None),
            ]
            for line in filter(None, samples):
                name = statements.statement_filename(run=annual, institution=line.institution, ext="xlsx")
                (per_institution / name).write_bytes(statements.statement_xlsx(run=annual, institution=line.institution))
                count += 1
        if hasattr(statements, "year_end_pack_xlsx"):
            (folder / statements.year_end_pack_filename(region=region, year=self.year)).write_bytes(
                statements.year_end_pack_xlsx(region=region, year=self.year))
            count += 1
        return count

    def benefits_summary(self, region) -> None:
        lines = _benefits_lines(region, self.year)
        if lines:
            self.say("")
        for line in lines:
            self.say(line)

    def _benefits(self, region) -> int:
        """special_outpatient.csv (BENEFITS.md) and the payers' statements for the year."""
        from benefits.exports import statement_csv_text, statement_xlsx_bytes
        from benefits.services import special_outpatient_settle_export

        folder = self.out / "benefits"
        special_outpatient_settle_export(region=region, year=self.year, out_dir=folder)
        count = 1
        for payer in ("basic", "critical", "assistance"):
            (folder / f"statement_{payer}_{region.code}_{self.year}.csv").write_text(
                statement_csv_text(region=region, year=self.year, payer=payer), encoding="utf-8")
            (folder / f"statement_{payer}_{region.code}_{self.year}.xlsx").write_bytes(
                statement_xlsx_bytes(region=region, year=self.year, payer=payer))
            count += 2
        return count

    def _incentives(self, region) -> int:
        from exchange.exports import payouts_compute_export

        payout = payouts_compute_export(region=region, year=self.year, out_dir=self.out / "incentives", excel=True)
        lines = payout.lines.count()
        self.say(f"   incentives: {lines} payout lines, total {_money(payout.total)} (draft; finance approves it)")
        return len(list((self.out / "incentives").iterdir()))


def _benefits_lines(region, year: int) -> list[str]:
    """The special-outpatient year (BENEFITS.md) in a few lines: the layers, and who reached what."""
    from django.db.models import Count, Q, Sum

    from benefits.models import Patient, SpecialOutpatientClaim

    claims = SpecialOutpatientClaim.objects.filter(region=region, service_date__year=year, settled_at__isnull=False)
    t = claims.aggregate(n=Count("pk"), total=Sum("total_cost"), basic=Sum("basic"), critical=Sum("critical"),
                         assistance=Sum("assistance"), patient=Sum("patient_pay"))
    if not t["n"]:
        return []
    reached = claims.values("patient_id").annotate(c=Sum("critical")).filter(c__gt=0).count()
    capped = claims.filter(Q(explanation__cap_left_before="0.00") | Q(explanation__disease_cap_left_before="0.00")).values("patient_id").distinct().count()
    categories = dict(Patient.objects.filter(region=region).values_list("category").annotate(n=Count("pk")))
    return [
        f"-- special outpatient (门诊特殊病种): {t['n']:,} claims, total {_money(t['total'])}",
        f"   basic (pool, as itemized payments) {_money(t['basic'])}; critical illness {_money(t['critical'])}; "
        f"assistance {_money(t['assistance'])}; patients {_money(t['patient'])}",
        f"   {reached:,} patients reached the critical-illness layer; {capped:,} found a cap used up; "
        f"listed patients by category: " + ", ".join(f"{k} {v:,}" for k, v in sorted(categories.items())),
    ]


def _money(value) -> str:
    return f"{Decimal(str(value)):,.2f}"


def _pct(value) -> str:
    return f"{Decimal(value) * 100:+.2f}%"


def _pad(text: str, width: int) -> str:
    """Left-align text whose CJK characters take two columns."""
    shown = sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)
    return text + " " * max(0, width - shown)
