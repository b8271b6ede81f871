from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from common.users import system_user
from drg.models import Region
from settlement.services import clearing_run_finalize, clearing_run_start


class Command(BaseCommand):
    help = "Run a monthly (--month) or annual clearing of a pool; prints the run id and the pool summary."

    def add_arguments(self, parser):
        parser.add_argument("--region", required=True)
        parser.add_argument("--fund", required=True, choices=["employee", "resident"])
        parser.add_argument("--year", required=True, type=int)
        parser.add_argument("--month", type=int)
        parser.add_argument("--finalize", action="store_true", help="finalize in the same call (batch use, as the system user)")
        parser.add_argument("--async", dest="run_async", action="store_true", help="queue the run on Celery and return")

    def handle(self, *args, region, fund, year, month, finalize, run_async, **options):
        try:
            region_obj = Region.objects.get(code=region)
        except Region.DoesNotExist as exc:
            raise CommandError(f"unknown region {region!r}") from exc
        if finalize and run_async:
            raise CommandError("--finalize needs the run's results; it cannot be combined with --async")
        user = system_user()
        try:
            run = clearing_run_start(region=region_obj, fund=fund, year=year, month=month, user=user, run_async=run_async)
            if finalize:
                run = clearing_run_finalize(run=run, user=user, system=True)
        except (ValidationError, PermissionDenied) as exc:
            raise CommandError("; ".join(getattr(exc, "messages", [str(exc)]))) from exc
        self.stdout.write(f"run {run.pk} {run.kind} {region}/{fund}/{year}{'-%02d' % month if month else ''}: {run.status}")
        if run.totals:
            width = max(len(k) for k in run.totals)
            for key, value in run.totals.items():
                if key.endswith("_exact"):
                    continue
                self.stdout.write(f"  {key:<{width}}  {value}")
        if run.timings:
            self.stdout.write("  timings (s): " + ", ".join(f"{k} {v}" for k, v in run.timings.items()))
