"""pay_incentives --region R --year Y --out DIR: compute the year's incentive payouts (a draft, as
the system user) and write DIR/incentives.csv (EXCHANGE.md)."""
from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from drg.models import Region
from exchange.exports import payouts_compute_export


class Command(BaseCommand):
    help = "Compute a region's fiscal incentive payouts for a year and write incentives.csv"

    def add_arguments(self, parser):
        parser.add_argument("--region", required=True, help="region code, e.g. 331083")
        parser.add_argument("--year", required=True, type=int)
        parser.add_argument("--out", required=True, type=Path, help="directory to write incentives.csv into")
        parser.add_argument("--excel", action="store_true", help="also write incentives.xlsx")

    def handle(self, *args, region, year, out, excel, **options):
        try:
            region_obj = Region.objects.get(code=region)
        except Region.DoesNotExist:
            raise CommandError(f"unknown region {region}") from None
        try:
            payout = payouts_compute_export(region=region_obj, year=year, out_dir=out, excel=excel)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(
            f"payout {payout.pk} ({payout.status}) {region} {year}: {payout.lines.count()} lines, "
            f"total {payout.total:.2f}{' (pro-rated to the fiscal budget)' if payout.prorated else ''} -> {out / 'incentives.csv'}"
        )
