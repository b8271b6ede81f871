from django.db import models
from django.utils.translation import gettext_lazy as _


class Rule(models.TextChoices):
    COST_SHIFTING = "cost_shifting", _("转嫁费用")
    LOW_STANDARD_ADMISSION = "low_standard_admission", _("低标入院")
    PATIENT_SELECTION = "patient_selection", _("推诿病人")
    SPLIT_STAY = "split_stay", _("分解住院")
    UPCODING = "upcoding", _("高套")


class ParameterStatus(models.TextChoices):
    DRAFT = "draft", _("草稿")
    APPROVED = "approved", _("已批准")
    REJECTED = "rejected", _("已驳回")


class FindingStatus(models.TextChoices):
    OPEN = "open", _("待审核")
    CONFIRMED = "confirmed", _("已确认")
    DISMISSED = "dismissed", _("已排除")
    WITHDRAWN = "withdrawn", _("已撤回（复筛未再触发）")


class Basis(models.TextChoices):
    POOL = "pool", _("与统筹区比较")
    PREVIOUS_YEAR = "previous_year", _("与上年同期比较")
