from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from drg.models import Region
from settlement.choices import RunStatus
from settlement.selectors import latest_run
from exchange.exports import clearing_export


class Command(BaseCommand):
    help = "Write the latest run's outputs of a pool and period (clearing.csv, case_points.csv, pool.json or monthly.csv)."

    def add_arguments(self, parser):
        parser.add_argument("--region", required=True)
        parser.add_argument("--fund", required=True, choices=["employee", "resident"])
        parser.add_argument("--year", required=True, type=int)
        parser.add_argument("--month", type=int)
        parser.add_argument("--out", required=True, type=Path)

    def handle(self, *args, region, fund, year, month, out, **options):
        try:
            region_obj = Region.objects.get(code=region)
        except Region.DoesNotExist as exc:
            raise CommandError(f"unknown region {region!r}") from exc
        run = latest_run(region=region_obj, fund=fund, year=year, month=month, statuses=[RunStatus.DRAFT, RunStatus.FINALIZED])
        if run is None:
            raise CommandError(f"no cleared run for {region}/{fund}/{year}{'-%02d' % month if month else ''}")
        try:
            files = clearing_export(run=run, out_dir=out)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"run {run.pk} ({run.status}): " + ", ".join(str(f) for f in files))
