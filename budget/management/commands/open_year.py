from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from budget.services import year_open
from common.users import system_user
from drg.models import Region


class Command(BaseCommand):
    help = ("Open year Y of a region: draft Y's payment scheme, catalog, coefficients and TCM equivalents from Y-1 "
            "and a budget draft per fund whose base is Y-1's approved total; each draft awaits approval.")

    def add_arguments(self, parser):
        parser.add_argument("--region", required=True)
        parser.add_argument("--year", required=True, type=int)
        parser.add_argument("--user", help="username of the drafter (default: the batch system user)")

    def handle(self, *args, region, year, user=None, **options):
        if any(ord(ch) < 32 for ch in region) or any(ord(ch) < 32 for ch in (user or "")):
            raise CommandError(f"unknown region {region!r}" if any(ord(ch) < 32 for ch in region) else f"unknown user {user!r}")
        try:
            region_obj = Region.objects.get(code=region)
        except Region.DoesNotExist as exc:
            raise CommandError(f"unknown region {region!r}") from exc
        if not 2000 <= year <= 2100:
            raise CommandError(f"year must be 2000..2100, got {year}")
        if user:
            drafter = get_user_model().objects.filter(username=user).first()
            if drafter is None:
                raise CommandError(f"unknown user {user!r}")
        else:
            drafter = system_user()
        try:
            opened = year_open(region=region_obj, year=year, user=drafter)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        for revision in opened.revisions:
            self.stdout.write(f"drafted {revision.kind} revision r{revision.revision} of {region}/{year} (#{revision.pk})")
        for budget in opened.budgets:
            self.stdout.write(f"drafted budget {region}/{budget.fund}/{year} r{budget.revision}: base {budget.base_amount}, total {budget.total}")
        self.stdout.write("every draft awaits approval by an approver (admin: 参数修订, 预算)")
