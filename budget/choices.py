from django.utils.translation import gettext_lazy as _
from django.db import models


class BudgetStatus(models.TextChoices):
    DRAFT = "draft", _("草稿")
    APPROVED = "approved", _("已批准")
