"""One language per screen: the main admin pages of a bureau's year (the worked example) rendered in
Chinese carry no English word beyond codes and acronyms, and in English no Chinese label of the
product's own (data such as hospital names stays as entered)."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from budget.models import Budget
from drg.models import Case, Institution
from settlement.models import ClearingRun
from tests.integration.admin_helpers import approved_budget, make_user

pytestmark = pytest.mark.django_db

# Words allowed on a Chinese screen: acronyms and formats, codes, people's user names, the formulas' letters.
ALLOWED = {
    "DRG", "API", "CSV", "Excel", "PDF", "xlsx", "csv", "pdf", "HIS", "TCM", "ID", "YYYY", "MM", "DD", "Django",
    "alan", "olga", "audrey", "system",  # user names are what a person logs in with
}
CODE = re.compile(r"^[A-Z]{2,5}$")  # upper-case codes and acronyms (a health-community group's code, DRG…)


class VisibleText(HTMLParser):
    """The text a person sees: no scripts, styles, hidden inputs' values, or tag attributes except
    the input buttons' values and the titles of links and images."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "style", "svg", "template"):
            if tag != "svg":
                self.skip += 1
        if tag == "input" and attrs.get("type") in ("submit", "button"):
            self.parts.append(attrs.get("value") or "")
        if tag in ("input", "textarea") and attrs.get("placeholder"):
            self.parts.append(attrs["placeholder"])

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return " ".join(parser.parts)


def english_words(text: str) -> set[str]:
    """English words of the text; a token with a digit, an underscore, a slash or a dot is a code, a
    path or a number (H1, GB25, tumor_surgery, ../bundle, 0.95), not a word."""
    words = set()
    for token in re.split(r"[\s\u3000-\u303f\uff00-\uffef\u4e00-\u9fff·,;:()\[\]{}\"'“”‘’<>|=+*%#—–-]+", text):
        if not token or re.search(r"[\d_/.@]", token):
            continue
        words |= {w for w in re.findall(r"[A-Za-z]{2,}", token)}
    return {w for w in words if w not in ALLOWED and not CODE.match(w)}


def chinese_labels(text: str, data: set[str]) -> set[str]:
    """Runs of Chinese characters that are not part of the data (hospital, region, group names…)."""
    runs = set(re.findall(r"[\u4e00-\u9fff]+", text))
    return {r for r in runs if not any(r in d for d in data)}


@pytest.fixture
def year(employee_year):
    region, monthly, annual = employee_year
    approver = make_user("alan", "approver")
    operator = make_user("olga", "operator")
    auditor = make_user("audrey", "auditor")
    draft = Budget.objects.filter(region=region, fund="resident", year=2025).first()
    return region, monthly, annual, approver, operator, auditor, draft


def pages(region, monthly, annual):
    case = Case.objects.filter(region=region).order_by("pk").first()
    budget = Budget.objects.filter(region=region).order_by("pk").first()
    return [
        reverse("admin:index"),
        reverse("admin:budget_budget_changelist"),
        reverse("admin:budget_budget_change", args=[budget.pk]),
        reverse("admin:settlement_clearingrun_changelist"),
        reverse("admin:settlement_clearingrun_change", args=[annual.pk]),
        reverse("admin:settlement_clearingrun_compare", args=[annual.pk]) + f"?against={monthly[12].pk}",
        reverse("admin:settlement_pool", args=[region.pk, "employee", 2025]),
        reverse("admin:drg_case_changelist"),
        reverse("admin:drg_case_change", args=[case.pk]),
        reverse("admin:drg_institution_changelist"),
        reverse("admin:drg_correctionrequest_changelist"),
        reverse("admin:drg_specialreview_changelist"),
        reverse("admin:settlement_itemizedclaim_changelist"),
        reverse("admin:settlement_clearingrun_results", args=[annual.pk]),
        reverse("admin:settlement_institutionline_changelist"),
        reverse("admin:incentives_payout_changelist"),
        reverse("admin:incentives_incentiverule_changelist"),
    ]


def data_names(region) -> set[str]:
    names = {region.name, "简体中文"}  # the language switch names each language in itself
    names |= set(Institution.objects.values_list("name", flat=True))
    from drg.models import DrgGroup
    names |= set(DrgGroup.objects.values_list("name", flat=True))
    from incentives.models import IncentiveRule
    names |= set(IncentiveRule.objects.values_list("name", flat=True))
    names |= set(Case.objects.values_list("patient_id", flat=True))
    names |= set(Budget.objects.values_list("reason", flat=True))  # typed or loaded reasons are data
    return names


def test_the_main_admin_pages_in_chinese_have_no_english_words(client, year):
    region, monthly, annual, approver, operator, auditor, draft = year
    client.force_login(approver)
    found = {}
    for url in pages(region, monthly, annual):
        response = client.get(url)
        assert response.status_code == 200, url
        words = english_words(visible_text(response.content.decode()))
        if words:
            found[url] = sorted(words)
    assert found == {}


def test_the_main_admin_pages_in_english_have_no_chinese_labels(client, year):
    region, monthly, annual, approver, operator, auditor, draft = year
    client.force_login(approver)
    client.post(reverse("set_language"), {"language": "en", "next": "/admin/"})
    data = data_names(region)
    found = {}
    for url in pages(region, monthly, annual):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert '<html lang="en"' in html, url
        labels = chinese_labels(visible_text(html), data)
        if labels:
            found[url] = sorted(labels)
    assert found == {}


def test_the_language_switch_is_on_every_admin_page(client, year):
    region, monthly, annual, approver, *_ = year
    client.force_login(approver)
    html = client.get(reverse("admin:index")).content.decode()
    assert f'action="{reverse("set_language")}"' in html and 'value="en"' in html and "简体中文" in html
