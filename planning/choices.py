from django.db import models
from django.utils.translation import gettext_lazy as _


class ScenarioStatus(models.TextChoices):
    QUEUED = "queued", _("排队")
    RUNNING = "running", _("运行中")
    DONE = "done", _("已完成")
    FAILED = "failed", _("失败")
