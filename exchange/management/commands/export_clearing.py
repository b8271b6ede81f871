from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from drg.models import Region
from settlement.choices import RunStatus
from exchange.exports import clearing_export
from settlement.selectors import standing_run


class Command(BaseCommand):
    help = ("Write the outputs of a pool and period's binding run — its finalized, not superseded run; while none is "
            "finalized, its latest draft (clearing.csv, case_points.csv, pool.json or monthly.csv).")

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
        run = standing_run(region_id=region_obj.pk, fund=fund, year=year, month=month)
        if run is None:
            raise CommandError(f"no cleared run for {region}/{fund}/{year}{'-%02d' % month if month else ''}")
        try:
            files = clearing_export(run=run, out_dir=out)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        standing = "binding" if run.status == RunStatus.FINALIZED else "draft, not final: no run of the period is finalized yet"
        self.stdout.write(f"run {run.pk} ({standing}): " + ", ".join(str(f) for f in files))
