from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from drg.models import Region
from planning.domain.rate_setting import RateSettingError, parse_weights, parse_years
from planning.services import rate_setting_compute, rate_setting_write


class Command(BaseCommand):
    help = ("PLANNING.md §1: set year Y's base points from the cases of the reference years; writes "
            "DIR/drg_groups.csv, DIR/scheme.json and DIR/rate_setting.csv (nothing is stored).")

    def add_arguments(self, parser):
        parser.add_argument("--region", required=True)
        parser.add_argument("--year", required=True, type=int, help="target year Y")
        parser.add_argument("--reference", help="reference years, oldest first, e.g. 2022,2023,2024 (default: the three before Y)")
        parser.add_argument("--weights", help="one weight per reference year, e.g. 2,3,5 (default 2:3:5 for three years)")
        parser.add_argument("--out", required=True, help="output directory")

    def handle(self, *args, region, year, reference, weights, out, **options):
        if "\x00" in region or not region.strip():
            raise CommandError("--region: a region code is required")
        try:
            region_obj = Region.objects.get(code=region)
        except Region.DoesNotExist as exc:
            raise CommandError(f"unknown region {region[:40]!r}") from exc
        if not 1000 <= year <= 9999:
            raise CommandError(f"--year: expected a four-digit year, got {year}")
        try:
            years = parse_years(reference) if reference else None
            weight_values = parse_weights(weights) if weights else None
            result = rate_setting_compute(region=region_obj, year=year, reference_years=years, weights=weight_values)
            written = rate_setting_write(result=result, out_dir=Path(out))
        except (RateSettingError, ValidationError) as exc:
            raise CommandError(str(exc)) from exc
        summary = result.summary()
        self.stdout.write(
            f"rate-setting {region}/{year} from {','.join(map(str, summary['reference_years']))} "
            f"(weights {':'.join(map(str, summary['weights']))}): A = {summary['all_case_avg_cost']}; "
            f"groups set {summary['groups']['set']}, too_few_cases {summary['groups']['too_few_cases']}, "
            f"no_cases {summary['groups']['no_cases']}; cases kept {summary['cases']}, trimmed {summary['trimmed']}"
        )
        for path in written:
            self.stdout.write(f"  {path}")
