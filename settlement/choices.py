from django.utils.translation import gettext_lazy as _
from django.db import models


class RunKind(models.TextChoices):
    MONTHLY = "monthly", _("月度预付")
    ANNUAL = "annual", _("年度清算")


class RunStatus(models.TextChoices):
    QUEUED = "queued", _("排队")
    RUNNING = "running", _("运行中")
    DRAFT = "draft", _("草稿")
    FINALIZED = "finalized", _("已定稿")
    SUPERSEDED = "superseded", _("已被取代")
    FAILED = "failed", _("失败")


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
# Runs that were finalized: each is a payment order, whether it is still the binding run of its
# period (finalized) or was replaced by a later one (superseded). Every amount they paid counts.
PAID_RUN_STATUSES = (RunStatus.FINALIZED, RunStatus.SUPERSEDED)
# Runs with stored results (lines, case points).
RESULT_RUN_STATUSES = (RunStatus.DRAFT, RunStatus.FINALIZED, RunStatus.SUPERSEDED)


class AdjustmentStatus(models.TextChoices):
    DRAFT = "draft", _("草稿")
    APPROVED = "approved", _("已批准")
    REJECTED = "rejected", _("已驳回")


class ItemizedSource(models.TextChoices):
    """Where an itemized special-outpatient payment comes from (both are paid at actual, §5)."""

    ADJUDICATED = "", _("单议核定")
    SPECIAL_OUTPATIENT = "special_outpatient", _("门特一站式结算")
