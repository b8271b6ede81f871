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
    FAILED = "failed", _("失败")


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class AdjustmentStatus(models.TextChoices):
    DRAFT = "draft", _("草稿")
    APPROVED = "approved", _("已批准")
    REJECTED = "rejected", _("已驳回")
