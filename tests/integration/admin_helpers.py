"""Helpers for the admin tests (no tests here): users in the bureau's role groups, a small pool."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from budget.domain.lines import BudgetInputs
from budget.services import budget_approve, budget_draft
from drg.models import Case, DrgGroup, Institution, PaymentScheme, Region


def make_user(username: str, role: str | None = None, **extra):
    user = get_user_model().objects.create_user(username=username, password="pw-" + username, is_staff=True, **extra)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def small_region() -> Region:
    region = Region.objects.create(code="990001", name="测试区")
    PaymentScheme.objects.create(region=region, year=2025, all_case_avg_cost=Decimal("10000.00"))
    DrgGroup.objects.create(region=region, year=2025, code="GB25", name="胃肠手术", kind="stable", base_points=Decimal("80"), avg_cost=Decimal("8000"))
    return region


def make_institution(region: Region, code: str = "H1", **extra) -> Institution:
    defaults = {"name": f"医院{code}", "level": 2, "category": "general", "coefficient": Decimal("1.1")}
    defaults.update(extra)
    return Institution.objects.create(region=region, code=code, **defaults)


def make_case(institution: Institution, case_no: str = "c01", **extra) -> Case:
    values = {
        "region": institution.region, "fund": "employee", "patient_id": "P001",
        "admission_date": dt.date(2025, 3, 1), "discharge_date": dt.date(2025, 3, 8), "drg_code": "GB25",
        "total_cost": Decimal("9000.00"), "self_pay": Decimal("1800.00"),
    }
    values.update(extra)
    return Case.objects.create(institution=institution, case_no=case_no, **values)


def approved_budget(region: Region, *, fund: str = "employee", year: int = 2025, drafter=None, approver=None):
    budget = budget_draft(region=region, fund=fund, year=year, inputs=BudgetInputs(base_amount=Decimal("1000000.00"), growth_rate=Decimal("0.05")), user=drafter)
    return budget_approve(budget=budget, user=approver, system=approver is None)
