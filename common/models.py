"""Abstract model pieces shared by the apps (no concrete tables here)."""
from django.utils.translation import gettext_lazy as _
from django.conf import settings
from django.db import models
from django.db.models import Q


class IdentifierField(models.CharField):
    """Text that names something (a case number, a patient id) and is compared byte by byte.

    On PostgreSQL the column is ``COLLATE "C"``: its indexes are sorted by memcmp with abbreviated
    keys instead of the server locale's strcoll, which builds the cases' key and patient indexes
    of a first load 30–50 % faster, and identifiers sort the same on every server whatever its
    locale (for UTF-8 text, byte order is code-point order, as ``C.UTF-8`` sorts). Equality is the
    same under both. SQLite compares text byte by byte already (its BINARY collation), so the
    column is left as it is there. docs/decisions.md item 64."""

    def db_parameters(self, connection):
        parameters = super().db_parameters(connection)
        if connection.vendor == "postgresql" and not self.db_collation:
            parameters["collation"] = "C"
        return parameters


class ReviewStatus(models.TextChoices):
    SUBMITTED = "submitted", _("已提交")
    APPROVED = "approved", _("已通过")
    REJECTED = "rejected", _("已驳回")


class Reviewable(models.Model):
    """A record a hospital submits and the bureau approves or rejects (with a reason)."""

    status = models.CharField(_("状态"), max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.SUBMITTED)
    submitted_at = models.DateTimeField(_("提交时间"), auto_now_add=True)
    decided_at = models.DateTimeField(_("审核时间"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("审核人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        db_index=False,  # looked up only when a user is deleted (refused while referenced)
    )
    rejection_reason = models.TextField(_("驳回理由"), blank=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("经办审核人"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text=_("审核队列中由谁处理此记录"), db_index=False,  # review_indexes
    )

    class Meta:
        abstract = True


def review_indexes(prefix: str) -> list[models.Index]:
    """A Reviewable model's indexes of the review queue, for its Meta.indexes: partial, so that the
    approved records a bundle brings in bulk (the great majority of rows) are in neither. The queue
    filters by a status other than approved and by the reviewer assigned; an approved record is
    found by its own keys (docs/decisions.md item 63)."""
    return [
        models.Index(fields=["status"], condition=~Q(status="approved"), name=f"{prefix}_open_idx"),
        models.Index(fields=["assigned_to"], condition=Q(assigned_to__isnull=False), name=f"{prefix}_assignee_idx"),
    ]
