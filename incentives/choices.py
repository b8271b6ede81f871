from django.utils.translation import gettext_lazy as _
from django.db import models

from incentives.domain import rules as domain_rules


class IncentiveBasis(models.TextChoices):
    """What a rule counts (SETTLEMENT.md §7); values are incentives.domain.rules.BASES."""

    TUMOR_SURGERY = domain_rules.TUMOR_SURGERY, _("恶性肿瘤三、四级手术")
    CHRONIC_ENROLLMENT = domain_rules.CHRONIC_ENROLLMENT, _("新纳管慢病患者")
    TCM_PRESCRIPTION = domain_rules.TCM_PRESCRIPTION, _("中药饮片处方")
    TCM_BED_DAY = domain_rules.TCM_BED_DAY, _("中医住院床日")
    HOSPICE_BED = domain_rules.HOSPICE_BED, _("安宁疗护床位")
    HOSPICE_INPATIENT = domain_rules.HOSPICE_INPATIENT, _("住院安宁疗护")
    HOSPICE_HOME = domain_rules.HOSPICE_HOME, _("居家安宁疗护")
    SCREENING_WAIVER = domain_rules.SCREENING_WAIVER, _("高风险人群筛查减免")


class PayeeKind(models.TextChoices):
    INSTITUTION = domain_rules.PAYEE_INSTITUTION, _("机构")
    GROUP = domain_rules.PAYEE_GROUP, _("健共体集团")


class PayoutStatus(models.TextChoices):
    DRAFT = "draft", _("草稿")
    APPROVED = "approved", _("已批准")
    PAID = "paid", _("已支付")
