from django.db import models

from incentives.domain import rules as domain_rules


class IncentiveBasis(models.TextChoices):
    """What a rule counts (SETTLEMENT.md §7); values are incentives.domain.rules.BASES."""

    TUMOR_SURGERY = domain_rules.TUMOR_SURGERY, "恶性肿瘤三、四级手术 cases by surgery grade"
    CHRONIC_ENROLLMENT = domain_rules.CHRONIC_ENROLLMENT, "新纳管慢病患者 newly enrolled chronic patients"
    TCM_PRESCRIPTION = domain_rules.TCM_PRESCRIPTION, "中药饮片处方 herbal prescriptions"
    TCM_BED_DAY = domain_rules.TCM_BED_DAY, "中医住院床日 TCM bed days"
    HOSPICE_BED = domain_rules.HOSPICE_BED, "安宁疗护床位 new hospice beds"
    HOSPICE_INPATIENT = domain_rules.HOSPICE_INPATIENT, "住院安宁疗护 inpatient hospice patients"
    HOSPICE_HOME = domain_rules.HOSPICE_HOME, "居家安宁疗护 home hospice patients"
    SCREENING_WAIVER = domain_rules.SCREENING_WAIVER, "高风险人群筛查减免 high-risk screening fees"


class PayeeKind(models.TextChoices):
    INSTITUTION = domain_rules.PAYEE_INSTITUTION, "机构 institution"
    GROUP = domain_rules.PAYEE_GROUP, "健共体集团 health-community group"


class PayoutStatus(models.TextChoices):
    DRAFT = "draft", "草稿 draft"
    APPROVED = "approved", "已批准 approved"
    PAID = "paid", "已支付 paid"
