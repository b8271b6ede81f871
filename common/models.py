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

    status = models.CharField(_("状态"), max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.SUBMITTED, db_index=True)
    submitted_at = models.DateTimeField(_("提交时间"), auto_now_add=True)
    decided_at = models.DateTimeField(_("审核时间"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("审核人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rejection_reason = models.TextField(_("驳回理由"), blank=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("经办审核人"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text=_("审核队列中由谁处理此记录"),
    )

    class Meta:
        abstract = True
