"""settle_special_outpatient --region R --year Y --out DIR: settle the region-year's claims that are
not settled (BENEFITS.md) and write DIR/special_outpatient.csv."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from benefits.services import special_outpatient_settle_export
from drg.models import Region


class Command(BaseCommand):
    help = "Settle a region-year's special-outpatient claims and write special_outpatient.csv"

    def add_arguments(self, parser):
        parser.add_argument("--region", required=True, help="region code, e.g. 331083")
        parser.add_argument("--year", required=True, type=int)
        parser.add_argument("--out", required=True, type=Path, help="directory to write special_outpatient.csv into")

    def handle(self, *args, region, year, out, **options):
        try:
            region_obj = Region.objects.get(code=region)
        except Region.DoesNotExist:
            raise CommandError(f"unknown region {region}") from None
        report, path = special_outpatient_settle_export(region=region_obj, year=year, out_dir=out)
        self.stdout.write(
            f"{region} {year}: {report.claims} claims, {report.newly_settled} newly settled, "
            f"{report.corrected} corrected ({report.seconds:.2f} s) -> {path}"
        )
