"""Abstract model pieces shared by the apps (no concrete tables here)."""
from django.utils.translation import gettext_lazy as _
from django.conf import settings
from django.db import models


class ReviewStatus(models.TextChoices):
    SUBMITTED = "submitted", _("已提交")
    APPROVED = "approved", _("已通过")
    REJECTED = "rejected", _("已驳回")


class Reviewable(models.Model):
    """A record a hospital submits and the bureau approves or rejects (with a reason)."""

    status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.SUBMITTED, db_index=True)
    submitted_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rejection_reason = models.TextField(blank=True)

    class Meta:
        abstract = True
