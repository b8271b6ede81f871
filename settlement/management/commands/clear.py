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
        parser.add_argument("--chunks", type=int, help="value the pool in N chunks of institutions on the Celery workers "
                                                       "(docs/scaleout.md; default: split pools of DRG_SCALEOUT_MIN_CASES cases or more)")

    def handle(self, *args, region, fund, year, month, finalize, run_async, chunks=None, **options):
        try:
            region_obj = Region.objects.get(code=region)
        except Region.DoesNotExist as exc:
            raise CommandError(f"unknown region {region!r}") from exc
        if finalize and run_async:
            raise CommandError("--finalize needs the run's results; it cannot be combined with --async")
        if chunks is not None and chunks < 1:
            raise CommandError("--chunks must be at least 1")
        user = system_user()
        try:
            run = clearing_run_start(region=region_obj, fund=fund, year=year, month=month, user=user, run_async=run_async, chunks=chunks)
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
        if run.error:
            self.stdout.write(f"  error: {run.error}")
        if run.timings:
            phases = {k: v for k, v in run.timings.items() if k != "chunks"}
            self.stdout.write("  timings (s): " + ", ".join(f"{k} {v}" for k, v in phases.items()))
            for chunk in run.timings.get("chunks") or []:
                institutions = chunk.get("institutions")
                count = len(institutions) if isinstance(institutions, list) else institutions
                self.stdout.write(
                    f"    chunk {chunk['chunk']}: {count} institutions, {chunk.get('cases')} cases"
                    + (f" on {chunk['worker']}" if chunk.get("worker") else "")
                    + "".join(f", {k} {chunk[k]}" for k in ("load", "value", "store") if k in chunk)
                )
