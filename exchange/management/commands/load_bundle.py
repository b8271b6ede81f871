"""python manage.py load_bundle DIR — validate and load an exchange bundle (EXCHANGE.md)."""
from __future__ import annotations

import logging
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
        # psycopg logs a warning of its own ("error ignored terminating <Copy>") while a COPY unwinds
        # from a lost connection; the command reports that loss once, in its own words, below.
        logging.getLogger("psycopg").setLevel(logging.ERROR)
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


# SQLSTATEs of a transaction PostgreSQL aborted over other transactions (deadlock, serialization,
# a lock not granted): the connection is fine and running the load again is all it takes
CONFLICT_STATES = ("40001", "40P01", "55P03")


def connection_lost_message(directory: Path, exc: DatabaseError) -> str:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    if getattr(exc.__cause__, "sqlstate", None) in CONFLICT_STATES:
        return _(
            "%(directory)s: 数据库因与其他事务冲突中止了载入（%(reason)s），nothing was loaded（载入在一个事务中，已整体回滚）；"
            "重新运行 load_bundle 即可"
        ) % {"directory": directory, "reason": reason}
    return _(
        "%(directory)s: 数据库连接中断（%(reason)s），nothing was loaded（载入在一个事务中，已整体回滚）；"
        "数据库恢复后重新运行 load_bundle 即可"
    ) % {"directory": directory, "reason": reason}
