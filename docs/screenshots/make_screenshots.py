"""Screenshots of the bureau's admin for the README, taken by a real browser (headless Chromium).

    .venv/bin/python docs/screenshots/make_screenshots.py [--out docs/screenshots] [--keep]

What it does, all on this machine: a throw-away SQLite database in a temporary directory; the spec's
worked example loaded; the employee pool cleared as a bureau would (an operator starts each monthly run
and the annual run, an approver finalizes them); a late correction approved and a second annual run
started, so the comparison has something to explain; the resident pool cleared the same way (it
overruns). Then Django is served in this process on 127.0.0.1 (a free port), each request carrying
the session cookie of a user logged in server-side (the approver; `?as=olga` for the operator), and
Chromium (`--headless --screenshot`) saves a PNG of each page. Needs Debian's `chromium` and
`fonts-noto-cjk` (apt-get install chromium fonts-noto-cjk); no Python package beyond the project's.
Not part of the test run. About half a minute.
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
import urllib.request
from decimal import Decimal
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT.parent / "shared" / "spec" / "worked-example" / "bundle"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--hide-scrollbars", "--force-device-scale-factor=1", "--virtual-time-budget=4000",
    "--lang=zh-CN", "--accept-lang=zh-CN,zh",  # the bureau's language
]


SIDEBAR_CLOSED = "/_screens/close-sidebar"  # served by serve(), not by Django


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
    from exchange.bundle import bundle_load
    from drg.models import Case, CorrectionRequest, Region
    from settlement.models import ItemizedClaim
    from settlement.services import clearing_run_finalize, clearing_run_start

    bundle_load(path=BUNDLE)
    region = Region.objects.get(code="331083")
    olga = User.objects.create_user("olga", password="x", is_staff=True, first_name="Olga")
    alan = User.objects.create_user("alan", password="x", is_staff=True, first_name="Alan")
    olga.groups.add(Group.objects.get(name="operator"))
    alan.groups.add(Group.objects.get(name="approver"))

    annual = {}
    for fund in ("employee", "resident"):
        for month in range(1, 13):
            run = clearing_run_start(region=region, fund=fund, year=2025, month=month, user=olga)
            clearing_run_finalize(run=run, user=alan)
        annual[fund] = clearing_run_finalize(run=clearing_run_start(region=region, fund=fund, year=2025, user=olga), user=alan)
    first = annual["employee"]

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
        if environ.get("PATH_INFO") == "/favicon.ico":
            start_response("204 No Content", [])
            return [b""]
        if environ.get("PATH_INFO") == SIDEBAR_CLOSED:  # the admin's nav sidebar remembers its state here
            start_response("200 OK", [("Content-Type", "text/html")])
            return [b"<script>localStorage.setItem('django.admin.navSidebarIsOpen', 'false')</script>closed"]
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


def check_page(url: str) -> None:
    """The page answers 200 with the admin's content, not a login form or an error page."""
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - our own 127.0.0.1 server
        body = response.read().decode()
    if response.status != 200 or 'id="login-form"' in body or 'id="content-main"' not in body and 'id="content"' not in body:
        raise SystemExit(f"{url} did not render the page (status {response.status})")


def shoot(chromium: str, url: str, out: Path, size: str, profile: Path, quiet: bool = False) -> None:
    subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}", f"--screenshot={out}", url],
        check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    if not quiet:
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
        print("preparing the worked example (load, 26 runs, a correction, a second annual run) …")
        state = prepare(tmp)
        server = serve(state["sessions"])
        base = f"http://127.0.0.1:{server.server_address[1]}"
        from django.urls import reverse

        from drg.models import Case

        region = state["region"]
        pages = [
            ("cockpit.png", reverse("admin:index"), "1400,1000"),
            ("pool.png", reverse("admin:settlement_pool", args=[region.pk, "employee", 2025]), "1400,1540"),
            ("pool-resident.png", reverse("admin:settlement_pool", args=[region.pk, "resident", 2025]), "1400,1150"),
            ("compare.png", reverse("admin:settlement_clearingrun_compare", args=[state["second"].pk]), "1600,880"),
            ("run.png", reverse("admin:settlement_clearingrun_change", args=[state["second"].pk]), "1400,1500"),
            ("budget-draft.png", reverse("admin:budget_budget_change", args=[state["draft"].pk]) + "?as=olga", "1400,1500"),
            ("scheme-revision.png", reverse("admin:drg_parameterrevision_draft_scheme") + f"?region={region.pk}&year=2025&as=olga", "1400,1700"),
            ("results.png", reverse("admin:settlement_clearingrun_results", args=[state["second"].pk]), "1400,900"),
            ("case.png", reverse("admin:drg_case_change", args=[Case.objects.get(region=region, case_no="c02").pk]), "1400,1300"),
        ]
        args.out.mkdir(parents=True, exist_ok=True)
        profile = tmp / "chromium-profile"
        # Close the admin's nav sidebar once (the profile keeps it closed): the pages get the full width.
        shoot(chromium, base + SIDEBAR_CLOSED, tmp / "sidebar.png", "400,100", profile, quiet=True)
        for name, path, size in pages:
            check_page(base + path)
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
