"""Screenshots of the bureau's admin for the README, taken by a real browser (headless Chromium).

    .venv/bin/python docs/screenshots/make_screenshots.py [--out docs/screenshots] [--keep]

What it does, all on this machine: a throw-away SQLite database in a temporary directory; the spec's
worked example loaded; the employee pool cleared as a bureau would (an operator starts each monthly run
and the annual run, an approver finalizes them); a late correction approved and a second annual run
started, so the comparison has something to explain; the resident pool's monthly runs (it overruns).
Then Django is served on 127.0.0.1 (a random port) with an approver's session, and Chromium saves a
PNG of each page. Needs Debian's `chromium` (apt-get install chromium fonts-noto-cjk); not part of
the test run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from decimal import Decimal
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT.parent / "shared" / "spec" / "worked-example" / "bundle"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--hide-scrollbars", "--force-device-scale-factor=1", "--virtual-time-budget=4000",
]


def prepare(tmp: Path) -> dict:
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'screens.sqlite3'}"
    os.environ["DRG_VAR_DIR"] = str(tmp)
    os.environ.pop("CELERY_BROKER_URL", None)  # tasks run eagerly, in process
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from budget.domain.lines import BudgetInputs
    from budget.services import budget_draft
    from common.reviews import review_approve
    from drg.bundle import bundle_load
    from drg.models import Case, CorrectionRequest, Region
    from settlement.models import ItemizedClaim
    from settlement.services import clearing_run_finalize, clearing_run_start

    bundle_load(path=BUNDLE)
    region = Region.objects.get(code="331083")
    olga = User.objects.create_user("olga", password="x", is_staff=True, first_name="Olga")
    alan = User.objects.create_user("alan", password="x", is_staff=True, first_name="Alan")
    olga.groups.add(Group.objects.get(name="operator"))
    alan.groups.add(Group.objects.get(name="approver"))

    for fund in ("employee", "resident"):
        for month in range(1, 13):
            run = clearing_run_start(region=region, fund=fund, year=2025, month=month, user=olga)
            clearing_run_finalize(run=run, user=alan)
    first = clearing_run_finalize(run=clearing_run_start(region=region, fund="employee", year=2025, user=olga), user=alan)

    # A late correction of a finalized period, then a new annual run to compare with the first.
    case = Case.objects.filter(region=region, fund="employee", institution__code="H3").order_by("case_no").first()
    request = CorrectionRequest.objects.create(
        institution=case.institution, case=case, reason="费用漏记 cost missed at month close",
        proposed={"total_cost": str(case.total_cost * 4)},
    )
    review_approve(record=request, user=alan, note="checked against the HIS bill")
    second = clearing_run_start(region=region, fund="employee", year=2025, user=olga)
    # Work waiting for the approver: a correction request and an itemized claim.
    other = Case.objects.filter(region=region, fund="employee", institution__code="H1").order_by("case_no").last()
    CorrectionRequest.objects.create(
        institution=other.institution, case=other, reason="出院方式录入错误 wrong discharge status", proposed={"discharge_status": "transfer"},
    )
    ItemizedClaim.objects.create(
        region=region, institution=other.institution, claim_no="MZ-2025-0107", fund="employee", month=dt.date(2025, 12, 1),
        patient_id="P107", claimed_amount=Decimal("1860.00"),
    )

    # A draft revision of the resident budget (the draft form shows the lines live).
    current = region.budgets.filter(fund="resident", status="approved").order_by("-revision").first()
    inputs = BudgetInputs(**{name: getattr(current, name) for name in BudgetInputs.__dataclass_fields__})
    draft = budget_draft(region=region, fund="resident", year=2025, inputs=inputs, user=olga, reason="重大政策调整: new county hospital wing")

    from django.test import Client

    sessions = {}
    for user in (olga, alan):
        client = Client()
        client.force_login(user)
        sessions[user.username] = client.cookies["sessionid"].value
    return {"region": region, "first": first, "second": second, "draft": draft, "sessions": sessions}


def serve(sessions: dict[str, str]):
    """Django on 127.0.0.1; each request is logged in as the user named by the URL's ?as= (default: the approver)."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.wsgi import get_wsgi_application

    app = StaticFilesHandler(get_wsgi_application())

    def with_session(environ, start_response):
        query = environ.get("QUERY_STRING", "")
        user = "olga" if "as=olga" in query else "alan"
        environ["HTTP_COOKIE"] = f"sessionid={sessions[user]}"
        return app(environ, start_response)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, with_session, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def shoot(chromium: str, url: str, out: Path, size: str, profile: Path) -> None:
    subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}", f"--screenshot={out}", url],
        check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    print(f"  {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}  <- {url}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--keep", action="store_true", help="keep the temporary database directory")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed (apt-get install chromium fonts-noto-cjk)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="drg-screens-"))
    try:
        print("preparing the worked example (load, 25 runs, a correction) …")
        state = prepare(tmp)
        server = serve(state["sessions"])
        base = f"http://127.0.0.1:{server.server_address[1]}"
        from django.urls import reverse

        region = state["region"]
        pages = [
            ("cockpit.png", reverse("admin:index"), "1400,1100"),
            ("pool-employee.png", reverse("admin:settlement_pool", args=[region.pk, "employee", 2025]), "1400,2300"),
            ("pool-resident-overrun.png", reverse("admin:settlement_pool", args=[region.pk, "resident", 2025]), "1400,1300"),
            ("run-compare.png", reverse("admin:settlement_clearingrun_compare", args=[state["second"].pk]), "1800,900"),
            ("run-detail.png", reverse("admin:settlement_clearingrun_change", args=[state["second"].pk]), "1600,1500"),
            ("runs-list.png", reverse("admin:settlement_clearingrun_changelist") + "?fund__exact=employee", "1900,1000"),
            ("budget-draft-live-lines.png", reverse("admin:budget_budget_change", args=[state["draft"].pk]) + "?as=olga", "1400,1500"),
            ("budget-growth-cap-refused.png", reverse("admin:budget_budget_add")
             + f"?as=olga&region={region.pk}&fund=employee&year=2026&base_amount=325049.00&growth_rate=0.12", "1400,1250"),
            ("budget-approve.png", reverse("admin:budget_budget_change", args=[state["draft"].pk]), "1400,1300"),
            ("review-queue.png", reverse("admin:drg_correctionrequest_changelist"), "1600,700"),
        ]
        args.out.mkdir(parents=True, exist_ok=True)
        profile = tmp / "chromium-profile"
        for name, path, size in pages:
            shoot(chromium, base + path, args.out / name, size, profile)
        server.shutdown()
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
