"""Install the default incentive rule set of SETTLEMENT.md §7 (Yuhuan 2024), valid from 2024-01-01.

A frozen copy of incentives.domain.defaults.YUHUAN_2024 (migrations must not import code that
changes later). Existing codes are left as they are, so re-running or an earlier manual entry is safe.
"""
from datetime import date
from decimal import Decimal

from django.db import migrations

FROM = date(2024, 1, 1)
RULES = [
    {"code": "tumor_surgery", "name": "恶性肿瘤三、四级手术", "basis": "tumor_surgery", "grade_amounts": {"3": "1000", "4": "2000"}},
    {"code": "chronic_enrollment", "name": "新纳管慢病患者", "basis": "chronic_enrollment", "amount": Decimal("50"), "payee": "group"},
    {"code": "tcm_prescription", "name": "中药饮片处方", "basis": "tcm_prescription", "amount": Decimal("5"), "public_only": True},
    {"code": "tcm_bed_day", "name": "中医住院床日", "basis": "tcm_bed_day", "amount": Decimal("30"), "public_only": True},
    {"code": "hospice_bed", "name": "新增安宁疗护床位", "basis": "hospice_bed", "amount": Decimal("30000"), "public_only": True},
    {"code": "hospice_inpatient", "name": "住院安宁疗护患者", "basis": "hospice_inpatient", "amount": Decimal("2000")},
    {"code": "hospice_home", "name": "居家安宁疗护患者", "basis": "hospice_home", "amount": Decimal("1000")},
    {"code": "screening_waiver", "name": "高风险人群自主筛查减免", "basis": "screening_waiver", "rate": Decimal("0.30")},
]
DESCRIPTION = "玉环市2024年三医协同财政激励 default rule set (SETTLEMENT.md §7)"


def install(apps, schema_editor):
    IncentiveRule = apps.get_model("incentives", "IncentiveRule")
    for row in RULES:
        defaults = {"valid_from": FROM, "description": DESCRIPTION, "payee": "institution", "public_only": False, **row}
        defaults.pop("code")
        IncentiveRule.objects.get_or_create(code=row["code"], defaults=defaults)


def uninstall(apps, schema_editor):
    IncentiveRule = apps.get_model("incentives", "IncentiveRule")
    IncentiveRule.objects.filter(code__in=[row["code"] for row in RULES], payout_lines__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("incentives", "0002_rules_payouts")]
    operations = [migrations.RunPython(install, uninstall)]
