from django.db import models


class BudgetStatus(models.TextChoices):
    DRAFT = "draft", "草稿 draft"
    APPROVED = "approved", "已批准 approved"
