from django.db import models


class RunKind(models.TextChoices):
    MONTHLY = "monthly", "月度预付 monthly"
    ANNUAL = "annual", "年度清算 annual"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "排队 queued"
    RUNNING = "running", "运行中 running"
    DRAFT = "draft", "草稿 draft"
    FINALIZED = "finalized", "已定稿 finalized"
    SUPERSEDED = "superseded", "已被取代 superseded"
    FAILED = "failed", "失败 failed"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
# Runs that were finalized: each is a payment order, whether it is still the binding run of its
# period (finalized) or was replaced by a later one (superseded). Every amount they paid counts.
PAID_RUN_STATUSES = (RunStatus.FINALIZED, RunStatus.SUPERSEDED)
# Runs with stored results (lines, case points).
RESULT_RUN_STATUSES = (RunStatus.DRAFT, RunStatus.FINALIZED, RunStatus.SUPERSEDED)


class AdjustmentStatus(models.TextChoices):
    DRAFT = "draft", "草稿 draft"
    APPROVED = "approved", "已批准 approved"
    REJECTED = "rejected", "已驳回 rejected"


class ItemizedSource(models.TextChoices):
    """Where an itemized special-outpatient payment comes from (both are paid at actual, §5)."""

    ADJUDICATED = "", "单议核定 adjudicated (bundle, admin)"
    SPECIAL_OUTPATIENT = "special_outpatient", "门特一站式结算 settled special-outpatient claim"
