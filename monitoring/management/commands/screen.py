"""python manage.py screen --region R --fund F --year Y --out DIR (MONITORING.md §4)."""
from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from drg.choices import Fund
from drg.models import Region
from monitoring.services import screen_export


class Command(BaseCommand):
    help = "写出统筹区运行指标与疑点筛查结果：indicators.csv、findings.csv、finding_cases.csv（MONITORING.md §4）"

    def add_arguments(self, parser):
        parser.add_argument("--region", required=True)
        parser.add_argument("--fund", required=True, choices=[f.value for f in Fund])
        parser.add_argument("--year", required=True, type=int)
        parser.add_argument("--out", required=True, type=Path)

    def handle(self, *args, **options):
        code = options["region"]
        if not code.isprintable() or len(code) > 12:
            raise CommandError(f"unknown region {code!r}")
        region = Region.objects.filter(code=code).first()
        if region is None:
            raise CommandError(f"unknown region {options['region']!r}")
        try:
            result = screen_export(region=region, fund=options["fund"], year=options["year"], out_dir=options["out"])
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(
            f"run #{result.run.pk}: {len(result.indicators)} indicator rows, {len(result.findings)} findings "
            f"→ {options['out']} ({result.timings})"
        )
