"""Approve or reject records that need a second pair of eyes (maker-checker), in one place.

Two shapes of record are decided here:
- ``Reviewable`` records (common.models): status submitted → approved | rejected, with decided_by/at and
  a rejection_reason (SpecialReview, ItemizedClaim, CorrectionRequest, the incentive inputs).
- status models: status draft → approved | rejected, with created_by and decided_by/at
  (PointAdjustment, Evaluation).

Rules, the same for every record:
- only a pending record (submitted / draft) can be decided; a decided record is history;
- the user needs the record's review permission (``drg.review_specialreview``, …);
- nobody decides what they created (maker-checker): the creator is the record's ``created_by``, or else
  the user of its first history row (simple_history); the batch system user (``system=True``) is exempt;
- approving a special review needs an approved cost, an itemized claim an approved amount (both default
  to what was requested); a rejection needs a reason;
- approving may have an effect in the same transaction, registered by the app that owns the model
  (``APPROVAL_EFFECTS``): approving a correction request applies its proposed values to the case and
  records a ``CaseCorrection`` (source=admin); approving a late case (kind late_case) creates the case
  (checked again by the submission's rules) and records a ``CaseCorrection`` with before={} and
  after=the row (drg.services.correction_request_apply); the next cumulative or annual run picks
  either up.

Every decision is saved with ``_history_user`` and ``_change_reason`` so the change history shows who
decided, when, and why. Interfaces (admin actions, API views) make one call here and map
``PermissionDenied`` / ``ValidationError`` to a message or a response.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils.translation import gettext_lazy as _
from django.utils import timezone

from common.models import ReviewStatus

APPROVED = "approved"
REJECTED = "rejected"
PENDING_STATUSES = frozenset({ReviewStatus.SUBMITTED.value, "draft"})
DECISIONS = (APPROVED, REJECTED)


@dataclass(frozen=True)
class ReviewSpec:
    """How one model is reviewed: the permission a decider needs and, where approval fixes an
    amount, the field it goes to and the field it defaults from."""

    permission: str
    amount_field: str | None = None
    requested_field: str | None = None


# Models with an explicit rule; any other Reviewable falls back to `review_<model>` / `approve_<model>`
# if its Meta declares one, else `change_<model>`.
REVIEW_SPECS: dict[str, ReviewSpec] = {
    "drg.specialreview": ReviewSpec("drg.review_specialreview", "approved_cost", "requested_cost"),
    "drg.correctionrequest": ReviewSpec("drg.review_correctionrequest"),
    "settlement.itemizedclaim": ReviewSpec("settlement.review_itemizedclaim", "approved_amount", "claimed_amount"),
    "settlement.pointadjustment": ReviewSpec("settlement.approve_pointadjustment"),
    "settlement.evaluation": ReviewSpec("settlement.approve_evaluation"),
    # Incentive inputs are decided by whoever approves incentive payouts (the approver role).
    "incentives.chronicenrollment": ReviewSpec("incentives.approve_payout"),
    "incentives.tcmworkload": ReviewSpec("incentives.approve_payout"),
    "incentives.hospiceservice": ReviewSpec("incentives.approve_payout"),
    "incentives.screening": ReviewSpec("incentives.approve_payout"),
}

# What approving a record does besides deciding it, named by the app that owns the model (drg: a
# correction request is applied to its case in the same transaction); label -> effect(record=, user=,
# note=). Registered from the owning app's AppConfig.ready, so this module imports no app above it.
APPROVAL_EFFECTS: dict[str, Callable[..., Any]] = {}


def review_approval_effect_register(*, label: str, effect: Callable[..., Any]) -> None:
    APPROVAL_EFFECTS[label] = effect


def review_spec(model: type[models.Model]) -> ReviewSpec:
    opts = model._meta
    spec = REVIEW_SPECS.get(opts.label_lower)
    if spec is not None:
        return spec
    declared = {codename for codename, _ in opts.permissions}
    for codename in (f"review_{opts.model_name}", f"approve_{opts.model_name}"):
        if codename in declared:
            return ReviewSpec(f"{opts.app_label}.{codename}")
    return ReviewSpec(f"{opts.app_label}.change_{opts.model_name}")


def is_pending(record: models.Model) -> bool:
    return record.status in PENDING_STATUSES


def record_creator_id(record: models.Model) -> int | None:
    """Who made the record: its created_by / drafted_by, else the user of its first history row."""
    for attname in ("created_by_id", "drafted_by_id"):
        if hasattr(record, attname):
            value = getattr(record, attname)
            if value is not None:
                return value
    history = getattr(record, "history", None)
    if history is not None:
        first = history.order_by("history_date", "history_id").values_list("history_user_id", flat=True).first()
        return first
    return None


CREATED_IT = _("此记录由你创建")


def review_can_decide(*, record: models.Model, user) -> str | None:
    """None if `user` may decide `record` now, else the reason why not (for greying out buttons)."""
    if not is_pending(record):
        return str(_("已处理（%(status)s）") % {"status": record.get_status_display()})
    if not user.has_perm(review_spec(type(record)).permission):
        return str(_("无审核权限"))
    if record_creator_id(record) == user.pk:
        return str(CREATED_IT)
    return None


def _check(record: models.Model, user, system: bool) -> None:
    if not is_pending(record):
        raise ValidationError(_("%(record)s 已处理（%(status)s），只能审核待审记录") % {"record": record, "status": record.get_status_display()})
    if system:
        return
    if user is None or not user.has_perm(review_spec(type(record)).permission):
        raise PermissionDenied(_("你无权审核%(what)s") % {"what": record._meta.verbose_name_plural})
    if record_creator_id(record) == user.pk:
        raise PermissionDenied(
            _("经办与审核须为不同人员：%(record)s 由你创建，须由另一位审核人处理") % {"record": record}
        )


def _locked(record: models.Model) -> models.Model:
    return type(record)._default_manager.select_for_update().get(pk=record.pk)


def _save_decision(record: models.Model, *, user, status: str, reason: str) -> None:
    record.status = status
    record.decided_by = user
    record.decided_at = timezone.now()
    record._history_user = user
    record._change_reason = reason[:100] if reason else status
    # Validate what the decision sets (and the constraints between those fields), not what the maker entered.
    decided = {"status", "decided_at", "rejection_reason", review_spec(type(record)).amount_field}
    record.full_clean(exclude=[f.name for f in record._meta.fields if f.name not in decided], validate_unique=False)
    record.save()


@transaction.atomic
def review_approve(*, record: models.Model, user, amount: Decimal | None = None, note: str = "", system: bool = False) -> models.Model:
    """Approve a pending record. `amount` sets the approved cost/amount where the model has one
    (default: what was requested). A correction request is applied to its case."""
    record = _locked(record)
    _check(record, user, system)
    spec = review_spec(type(record))
    if spec.amount_field:
        value = amount if amount is not None else getattr(record, spec.amount_field)
        if value is None and spec.requested_field:
            value = getattr(record, spec.requested_field)
        if value is None:
            raise ValidationError({spec.amount_field: _("批准须有核定金额（申请未填金额）")})
        if value < 0:
            raise ValidationError({spec.amount_field: _("核定金额不能为负数")})
        setattr(record, spec.amount_field, value)
    elif amount is not None:
        raise ValidationError(f"{record._meta.verbose_name} has no amount to approve")
    effect = APPROVAL_EFFECTS.get(record._meta.label_lower)
    if effect is not None:
        effect(record=record, user=user, note=note)
    _save_decision(record, user=user, status=APPROVED, reason=note or "approved")
    return record


@transaction.atomic
def review_reject(*, record: models.Model, user, reason: str, system: bool = False) -> models.Model:
    """Reject a pending record with a reason (stored in rejection_reason where the model has it,
    and in the change history always)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"rejection_reason": _("驳回须填写理由")})
    record = _locked(record)
    _check(record, user, system)
    if hasattr(record, "rejection_reason"):
        record.rejection_reason = reason
    _save_decision(record, user=user, status=REJECTED, reason=f"rejected: {reason}")
    return record


@dataclass
class ReviewBatch:
    """What a bulk decision did: the records decided and, for the others, why not."""

    decided: list[models.Model] = field(default_factory=list)
    refused: list[tuple[models.Model, str]] = field(default_factory=list)


def reviews_decide(
    *, records: Iterable[models.Model], user, decision: str, amount: Decimal | None = None, reason: str = ""
) -> ReviewBatch:
    """Decide many records, each in its own transaction: one refusal does not undo the others."""
    if decision not in DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    batch = ReviewBatch()
    for record in records:
        try:
            if decision == APPROVED:
                batch.decided.append(review_approve(record=record, user=user, amount=amount, note=reason))
            else:
                batch.decided.append(review_reject(record=record, user=user, reason=reason))
        except (PermissionDenied, ValidationError) as exc:
            batch.refused.append((record, error_text(exc)))
    return batch


def error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in exc.message_dict.items())
        return " ".join(exc.messages)
    return str(exc)
