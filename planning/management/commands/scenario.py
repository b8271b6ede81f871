import csv
import json
import sys
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from common.users import system_user
from drg.models import Region
from planning.models import Scenario
from planning.services import scenario_create, scenario_export

MAX_CHANGES_BYTES = 5_000_000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    """A CSV cell; text that a spreadsheet would read as a formula gets a leading apostrophe
    (amounts, which may be negative, stay numbers)."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_START):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


class Command(BaseCommand):
    help = ("PLANNING.md §2: run a scenario of a pool and period (from its binding run) with changed inputs "
            "given as JSON, or print a recorded one (--show ID); output JSON (default) or CSV per institution.")

    def add_arguments(self, parser):
        parser.add_argument("--region")
        parser.add_argument("--fund", choices=["employee", "resident"])
        parser.add_argument("--year", type=int)
        parser.add_argument("--month", type=int)
        parser.add_argument("--name", default="")
        parser.add_argument("--changes", default="{}", help='JSON text or @file.json, e.g. {"budget": {"growth_rate": "0.08"}}')
        parser.add_argument("--show", type=int, help="print a recorded scenario instead of running one")
        parser.add_argument("--format", choices=["json", "csv"], default="json")
        parser.add_argument("--out", help="write to this file instead of standard output")

    def handle(self, *args, region, fund, year, month, name, changes, show, format, out, **options):
        if show is not None:
            scenario = Scenario.objects.filter(pk=show).select_related("region", "base_run", "created_by").first()
            if scenario is None:
                raise CommandError(f"no scenario {show}")
        else:
            if not (region and fund and year):
                raise CommandError("--region, --fund and --year are required to run a scenario")
            try:
                region_obj = Region.objects.get(code=region)
            except Region.DoesNotExist as exc:
                raise CommandError(f"unknown region {region[:40]!r}") from exc
            text = changes
            if changes.startswith("@"):
                path = Path(changes[1:])
                if not path.is_file() or path.stat().st_size > MAX_CHANGES_BYTES:
                    raise CommandError(f"cannot read changes file {str(path)[:200]!r} (missing or over {MAX_CHANGES_BYTES} bytes)")
                text = path.read_text(encoding="utf-8-sig")
            if len(text) > MAX_CHANGES_BYTES:
                raise CommandError("--changes is too large")
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise CommandError(f"--changes is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
            try:
                scenario = scenario_create(region=region_obj, fund=fund, year=year, month=month, name=name or "batch",
                                           changes=parsed, user=system_user(), run_async=False)
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
        record = scenario_export(scenario=scenario)
        handle = open(out, "w", newline="", encoding="utf-8") if out else sys.stdout
        try:
            if format == "json":
                handle.write(json.dumps(record, ensure_ascii=False, indent=1, default=str) + "\n")
            else:
                lines = record["lines"]
                columns = list(lines[0]) if lines else ["institution_code"]
                writer = csv.writer(handle)
                writer.writerow(columns)
                for line in lines:
                    writer.writerow([_cell(line[c]) for c in columns])
        finally:
            if out:
                handle.close()
        if record["status"] != "done":
            raise CommandError(f"scenario {scenario.pk} {record['status']}: {record['error']}")
