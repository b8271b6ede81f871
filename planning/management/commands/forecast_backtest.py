from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from drg.models import Region
from planning.services import forecast_backtest


class Command(BaseCommand):
    help = "PLANNING.md §3: the year-end point-value forecast of each month of a year against the binding annual V (an estimate's track record)."

    def add_arguments(self, parser):
        parser.add_argument("--region", required=True)
        parser.add_argument("--fund", required=True, choices=["employee", "resident"])
        parser.add_argument("--year", required=True, type=int)

    def handle(self, *args, region, fund, year, **options):
        try:
            region_obj = Region.objects.get(code=region)
        except Region.DoesNotExist as exc:
            raise CommandError(f"unknown region {region[:40]!r}") from exc
        try:
            rows = forecast_backtest(region=region_obj, fund=fund, year=year)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        if not rows:
            raise CommandError(f"{region}/{fund}/{year} has no finalized monthly run of months 1–11")
        self.stdout.write(f"forecast error by month (estimate) {region}/{fund}/{year}, actual V = {rows[0]['actual']}")
        self.stdout.write("month  V_m        forecast V̂  error     season")
        for row in rows:
            self.stdout.write(f"{row['month']:>5}  {row['run_point_value']:<9}  {row['forecast']:<10}  {float(row['error']) * 100:6.2f}%   {row['season_source']}")
