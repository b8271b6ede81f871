"""Generate a synthetic region as an exchange bundle (exchange/synthetic.py; docs/demo.md)."""
from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from exchange.planting import PATTERNS, parse_plan
from exchange.synthetic import DEFAULT_REGION, generate_bundle


class Command(BaseCommand):
    help = "Write a complete, realistic synthetic bundle (EXCHANGE.md format); same seed, same bytes."

    def add_arguments(self, parser):
        parser.add_argument("--cases", type=int, default=100_000, help="number of inpatient cases (default 100000)")
        parser.add_argument("--seed", type=int, default=2025, help="random seed (default 2025)")
        parser.add_argument("--year", type=int, default=2025, help="settlement year (default 2025)")
        parser.add_argument("--out", required=True, help="bundle directory to write (created if missing)")
        parser.add_argument("--region", default=DEFAULT_REGION, help=f"region code (default {DEFAULT_REGION}, a fictional demo county)")
        parser.add_argument("--plant", default="", help="plant monitoring patterns: pattern=INSTITUTION[,…] with a pattern of "
                            f"{', '.join(PATTERNS)}; the ground truth goes to <out>.planted.csv")
        parser.add_argument("--plant-demo", action="store_true", help="one pattern each at the five largest institutions")

    def handle(self, *args, **options):
        started = time.perf_counter()

        def progress(step: str) -> None:
            if options["verbosity"] >= 2:
                self.stdout.write(f"  {time.perf_counter() - started:6.1f}s  {step}")

        try:
            plant = "demo" if options["plant_demo"] else parse_plan(options["plant"])
            summary = generate_bundle(
                out=Path(options["out"]), cases=options["cases"], seed=options["seed"], year=options["year"],
                region=options["region"], progress=progress, plant=plant or None,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for name, count in summary.rows.items():
            self.stdout.write(f"{name:26s} {count:>10,d} rows")
        for fund, budget in summary.budgets.items():
            self.stdout.write(f"budget {fund:9s} base {budget['base_amount']:>16s}  fund claims {summary.fund_claims[fund]:>16s}")
        if summary.planted:
            self.stdout.write(f"planted patterns (ground truth): {summary.planted}")
        self.stdout.write(self.style.SUCCESS(
            f"wrote {summary.path} (region {summary.region}, year {summary.year}, seed {summary.seed}) in {summary.seconds:.1f}s"
        ))
