"""python manage.py load_bundle DIR — validate and load an exchange bundle (EXCHANGE.md)."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.utils.translation import gettext as _

from exchange.bundle import BundleInvalid, bundle_load


class Command(BaseCommand):
    help = "Validate a bundle directory and load it all or nothing; prints counts per file."

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path, help="the bundle directory (params.json and the CSV files)")

    def handle(self, *args, directory: Path, verbosity: int = 1, **options):
        progress = (lambda message: self.stderr.write(f"… {message}")) if verbosity >= 2 else None
        try:
            report = bundle_load(path=directory, progress=progress)
        except BundleInvalid as exc:
            for error in exc.errors:
                self.stderr.write(str(error))
            raise CommandError(f"{directory}: {len(exc.errors)} error(s); nothing was loaded") from exc
        except (OperationalError, InterfaceError) as exc:
            # The connection broke (the server restarted, the backend was terminated, the network
            # went): the load's one transaction is gone with it. One line, no traceback.
            raise CommandError(connection_lost_message(directory, exc)) from exc
        width = max(len(name) for name in report.files) if report.files else 10
        self.stdout.write(f"{'file':<{width}}  {'created':>9}  {'updated':>9}  {'unchanged':>9}")
        for name, counts in report.files.items():
            self.stdout.write(f"{name:<{width}}  {counts.created:>9}  {counts.updated:>9}  {counts.unchanged:>9}")
        if report.corrections:
            self.stdout.write(f"{report.corrections} case correction(s) recorded")
        self.stdout.write(
            self.style.SUCCESS(f"loaded {directory} (region {report.region}, year {report.year}) in {report.seconds:.2f} s")
        )


def connection_lost_message(directory: Path, exc: DatabaseError) -> str:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return _(
        "%(directory)s: 数据库连接中断（%(reason)s），nothing was loaded（载入在一个事务中，已整体回滚）；"
        "数据库恢复后重新运行 load_bundle 即可"
    ) % {"directory": directory, "reason": reason}
