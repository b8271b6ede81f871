"""Admin for catalogs, cases and the case review queues — plus the building blocks every app's admin
uses (BureauAdmin, HistoryAdmin, ReviewAdmin, formatting helpers). See docs/admin.md.

The admin is an interface: it translates a click into one service call (budget.services,
settlement.services, common.reviews) and maps PermissionDenied / ValidationError to a message.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from common.reviews import (
    APPROVED,
    REJECTED,
    error_text,
    is_pending,
    review_approve,
    review_can_decide,
    review_reject,
    review_spec,
    reviews_decide,
)
from drg.admin_revisions import ParameterRevisionAdmin, RevisedByRevisionAdmin
from drg.models import (
    Case,
    CaseCorrection,
    Coefficient,
    CorrectionRequest,
    DrgGroup,
    Institution,
    ParameterRevision,
    PaymentScheme,
    Region,
    SpecialReview,
    TcmEquivalent,
)
from drg.services import CORRECTABLE_CASE_FIELDS

# The hospital API's credentials screen is owned by the API (drg/api/admin.py); importing it registers it.
try:
    from drg.api import admin as _credential_admin
except ModuleNotFoundError as exc:  # pragma: no cover - before the API's admin exists
    if exc.name != "drg.api.admin":
        raise
    _credential_admin = None

# --- formatting ---------------------------------------------------------------------------------------

STATUS_COLOURS = {
    "submitted": "#b26a00", "draft": "#b26a00", "queued": "#6b6b6b", "running": "#1f6fb2",
    "approved": "#2e7d32", "finalized": "#2e7d32", "rejected": "#b3261e", "failed": "#b3261e", "superseded": "#6b6b6b",
}


def money(value) -> str:
    """1,234,567.89 (or an em dash for empty)."""
    if value is None or value == "":
        return "—"
    return f"{Decimal(value):,.2f}"


def points(value) -> str:
    if value is None or value == "":
        return "—"
    return f"{Decimal(value):,.4f}"


def num_cell(text: str):
    return format_html('<span style="font-variant-numeric:tabular-nums;white-space:nowrap">{}</span>', text)


def status_badge(obj) -> str:
    colour = STATUS_COLOURS.get(obj.status, "#444")
    return format_html(
        '<span style="color:#fff;background:{};border-radius:3px;padding:1px 6px;white-space:nowrap">{}</span>',
        colour, obj.get_status_display(),
    )


def pretty_json(value) -> str:
    return format_html('<pre style="margin:0;white-space:pre-wrap">{}</pre>', json.dumps(value, ensure_ascii=False, indent=1, default=str))


def admin_link(obj, text=None) -> str:
    if obj is None:
        return "—"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else str(obj))


# --- building blocks ---------------------------------------------------------------------------------

class BureauAdmin(admin.ModelAdmin):
    """Every bureau screen: a POST the user may not make answers 403 (an auditor changes nothing),
    including a POST of an action the user does not have."""

    list_per_page = 50

    def changelist_view(self, request, extra_context=None):
        if request.method == "POST":
            action = request.POST.get("action")
            if action is None:
                if not self.has_change_permission(request):
                    raise PermissionDenied
            elif action not in self.get_actions(request):
                raise PermissionDenied
        return super().changelist_view(request, extra_context)


class ReadOnlyAdmin(BureauAdmin):
    """Records that only services write (cases, corrections, run results): view only, for everyone."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class HistoryAdmin(BureauAdmin, SimpleHistoryAdmin):
    """Change history (who, when, before/after) on catalogs, parameters, budgets and money records.
    History is for reading: simple_history's revert is switched off, since a revert would bypass the
    services (an approved budget could be turned back into a draft)."""

    def revert_disabled(self, request, obj=None):
        return True

    def history_view(self, request, object_id, extra_context=None):
        if not hasattr(self.model._meta, "simple_history_manager_attribute"):  # a model without HistoricalRecords
            return admin.ModelAdmin.history_view(self, request, object_id, extra_context)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)


class DecisionForm(forms.Form):
    amount = forms.DecimalField(
        label="核定金额 approved amount", required=False, max_digits=16, decimal_places=2, min_value=0,
        help_text="leave empty to approve what was requested",
    )
    reason = forms.CharField(label="理由 reason", required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))

    def __init__(self, *args, decision: str, amount_label: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if decision == REJECTED:
            del self.fields["amount"]
            self.fields["reason"].required = True
            self.fields["reason"].label = "驳回理由 reason for the rejection"
        else:
            self.fields["reason"].label = "备注 note (kept in the change history)"
            if amount_label is None:
                del self.fields["amount"]
            else:
                self.fields["amount"].label = amount_label


DECISION_TITLES = {APPROVED: "通过 Approve", REJECTED: "驳回 Reject"}


class ReviewAdmin(HistoryAdmin):
    """A review queue: pending records are approved or rejected one by one (buttons on the record) or
    in bulk (actions with an intermediate form for the amount or the reason), through common.reviews.
    Decided records are read-only; status and decision fields are never edited by hand."""

    decision_fields = ("status", "decided_by", "decided_at", "rejection_reason", "created_by")
    change_form_template = "admin/review_change_form.html"
    actions = ["approve_selected", "reject_selected"]

    # permissions
    def has_review_permission(self, request) -> bool:
        return request.user.has_perm(review_spec(self.model).permission)

    def has_change_permission(self, request, obj=None):
        if obj is not None and not is_pending(obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and not is_pending(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        present = {f.name for f in self.model._meta.fields}
        return [*super().get_readonly_fields(request, obj), *[f for f in self.decision_fields if f in present]]

    def get_list_select_related(self, request):
        related = list(super().get_list_select_related(request) or [])
        return [*related, "decided_by"]

    def save_model(self, request, obj, form, change):
        if not change and hasattr(obj, "created_by_id") and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description="状态 status", ordering="status")
    def status_badge(self, obj):
        return status_badge(obj)

    def amount_label(self) -> str | None:
        spec = review_spec(self.model)
        if not spec.amount_field:
            return None
        return f"核定 {self.model._meta.get_field(spec.amount_field).verbose_name}"

    # bulk actions
    @admin.action(description="通过所选 Approve selected", permissions=["review"])
    def approve_selected(self, request, queryset):
        return self._decide_many(request, queryset, APPROVED, "approve_selected")

    @admin.action(description="驳回所选 Reject selected (with a reason)", permissions=["review"])
    def reject_selected(self, request, queryset):
        return self._decide_many(request, queryset, REJECTED, "reject_selected")

    def _decide_many(self, request, queryset, decision: str, action_name: str):
        form = DecisionForm(request.POST if "apply" in request.POST else None, decision=decision, amount_label=self.amount_label())
        if "amount" in form.fields:
            form.fields["amount"].help_text = "leave empty to approve what each record requested; a value here applies to every selected record"
        if form.is_bound and form.is_valid():
            batch = reviews_decide(
                records=list(queryset), user=request.user, decision=decision,
                amount=form.cleaned_data.get("amount"), reason=form.cleaned_data.get("reason", ""),
            )
            if batch.decided:
                self.message_user(request, f"{DECISION_TITLES[decision]}: {len(batch.decided)} record(s) decided.", messages.SUCCESS)
            for record, why in batch.refused:
                self.message_user(request, f"#{record.pk} {record}: {why}", messages.ERROR)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"{DECISION_TITLES[decision]} · {self.model._meta.verbose_name_plural}",
            "opts": self.model._meta,
            "form": form,
            "records": [(r, review_can_decide(record=r, user=request.user)) for r in queryset],
            "action_name": action_name,
            "decision": decision,
            "bulk": True,
            "form_url": "",
        }
        return TemplateResponse(request, "admin/review_decision.html", context)

    # one record
    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path("<path:object_id>/decide/<str:decision>/", self.admin_site.admin_view(self.decide_view), name="%s_%s_decide" % info),
            *super().get_urls(),
        ]

    def decide_view(self, request, object_id, decision):
        if decision not in DECISION_TITLES:
            raise PermissionDenied
        if not self.has_review_permission(request):
            raise PermissionDenied
        record = get_object_or_404(self.model, pk=object_id)
        change_url = reverse(f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_change", args=[record.pk])
        form = DecisionForm(request.POST if request.method == "POST" else None, decision=decision, amount_label=self.amount_label())
        if form.is_bound and form.is_valid():
            try:
                if decision == APPROVED:
                    review_approve(record=record, user=request.user, amount=form.cleaned_data.get("amount"), note=form.cleaned_data.get("reason", ""))
                else:
                    review_reject(record=record, user=request.user, reason=form.cleaned_data["reason"])
            except (PermissionDenied, ValidationError) as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
            else:
                self.message_user(request, f"{DECISION_TITLES[decision]}: {record._meta.verbose_name} #{record.pk} decided.", messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{DECISION_TITLES[decision]} · {record}",
            "opts": self.model._meta,
            "form": form,
            "records": [(record, review_can_decide(record=record, user=request.user))],
            "decision": decision,
            "bulk": False,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/review_decision.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        record = self.get_object(request, object_id)
        if record is not None and is_pending(record) and self.has_review_permission(request):
            info = self.model._meta.app_label, self.model._meta.model_name
            extra_context["review_links"] = [
                (reverse("admin:%s_%s_decide" % info, args=[record.pk, decision]), title)
                for decision, title in DECISION_TITLES.items()
            ]
            extra_context["review_blocked"] = review_can_decide(record=record, user=request.user)
        return super().change_view(request, object_id, form_url, extra_context)


# --- catalogs ------------------------------------------------------------------------------------

@admin.register(Region)
class RegionAdmin(HistoryAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")


@admin.register(Institution)
class InstitutionAdmin(RevisedByRevisionAdmin, HistoryAdmin):
    """Institution attributes in force: read-only; changed by a revision (drg/admin_revisions.py)."""

    revision_table = "institutions"
    list_display = ("code", "name", "region", "level", "category", "is_public", "group_code", "coefficient")
    list_filter = ("region", "level", "category", "is_public")
    search_fields = ("code", "name", "group_code")
    list_select_related = ("region",)
    actions = ["issue_api_key"]

    def has_issue_key_permission(self, request) -> bool:
        return _credential_admin is not None and request.user.has_perm("drg.add_institutioncredential")

    @admin.action(description="签发接口密钥 Issue an API key (shown once)", permissions=["issue_key"])
    def issue_api_key(self, request, queryset):
        return _credential_admin.issue_api_key(self, request, queryset)


@admin.register(DrgGroup)
class DrgGroupAdmin(RevisedByRevisionAdmin, HistoryAdmin):
    revision_table = "groups"
    list_display = ("code", "name", "year", "region", "kind", "base_points", "avg_cost", "daily_points", "same_price", "readmission_exempt")
    list_filter = ("region", "year", "kind", "same_price", "readmission_exempt")
    search_fields = ("code", "name")
    list_select_related = ("region",)


@admin.register(Coefficient)
class CoefficientAdmin(RevisedByRevisionAdmin, HistoryAdmin):
    revision_table = "coefficients"
    list_display = ("institution", "year", "drg_code", "coefficient")
    list_filter = ("institution__region", "year", "institution")
    search_fields = ("institution__code", "institution__name", "drg_code")
    list_select_related = ("institution",)


@admin.register(TcmEquivalent)
class TcmEquivalentAdmin(RevisedByRevisionAdmin, HistoryAdmin):
    revision_table = "tcm_equivalents"
    list_display = ("drg_code", "equivalent_code", "year", "region")
    list_filter = ("region", "year")
    search_fields = ("drg_code", "equivalent_code")
    list_select_related = ("region",)


@admin.register(PaymentScheme)
class PaymentSchemeAdmin(RevisedByRevisionAdmin, HistoryAdmin):
    """The scheme in force: read-only; a change is a scheme revision (tiers as rows, rates in %)."""

    revision_table = "scheme"
    list_display = ("region", "year", "all_case_avg_cost", "low_outlier_multiple", "readmission_days", "readmission_factor", "prepay_ratio")
    list_filter = ("region", "year")
    search_fields = ("region__code", "region__name")
    list_select_related = ("region",)


admin.site.register(ParameterRevision, ParameterRevisionAdmin)


# --- cases ---------------------------------------------------------------------------------------

class DischargeYearFilter(admin.SimpleListFilter):
    title = "出院年份 discharge year"
    parameter_name = "discharge_year"

    def lookups(self, request, model_admin):
        years = DrgGroup.objects.order_by("-year").values_list("year", flat=True).distinct()
        return [(str(y), str(y)) for y in years]

    def queryset(self, request, queryset):
        year = _int_or_none(self.value())
        if year is None:
            return queryset
        return queryset.filter(discharge_date__gte=dt.date(year, 1, 1), discharge_date__lt=dt.date(year + 1, 1, 1))


class DischargeMonthFilter(admin.SimpleListFilter):
    """出院月份: with a year chosen, a date range (uses the pool/period index); else the month of any year."""

    title = "出院月份 discharge month"
    parameter_name = "discharge_month"

    def lookups(self, request, model_admin):
        return [(f"{m:02d}", f"{m:02d}月") for m in range(1, 13)]

    def queryset(self, request, queryset):
        month = _int_or_none(self.value())
        if month is None or not 1 <= month <= 12:
            return queryset
        year = _int_or_none(request.GET.get(DischargeYearFilter.parameter_name))
        if year is None:
            return queryset.filter(discharge_date__month=month)
        start = dt.date(year, month, 1)
        end = dt.date(year + (month == 12), month % 12 + 1, 1)
        return queryset.filter(discharge_date__gte=start, discharge_date__lt=end)


def _int_or_none(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


class CaseCorrectionInline(ReadOnlyInline):
    model = CaseCorrection
    fields = ("changed_at", "source", "changed_by", "before", "after", "reason")
    readonly_fields = fields
    verbose_name_plural = "更正记录 corrections"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("changed_by")


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    """Cases are read-only here: they come from the bundle and the hospital API; a change to a case of a
    finalized period goes through a correction request, which records a CaseCorrection."""

    list_display = ("case_no", "institution_code", "fund", "patient_id", "discharge_date", "drg_code", "total_cost_col", "self_pay_col", "discharge_status", "tcm_treatment")
    list_filter = ("region", "fund", DischargeYearFilter, DischargeMonthFilter, "institution", "discharge_status", "tcm_treatment")
    list_select_related = ("institution",)
    search_fields = ("case_no", "patient_id")
    search_help_text = "病案号 case_no or 患者 patient_id (exact), or an institution code"
    show_full_result_count = False
    inlines = (CaseCorrectionInline,)  # settlement.admin adds the valuation results of clearing runs
    change_form_template = "admin/drg/case/change_form.html"
    readonly_fields = ("special_review_link",)

    def get_search_results(self, request, queryset, search_term):
        """Exact matches on indexed columns (a case table holds millions of rows)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        from django.db.models import Q

        return queryset.filter(Q(case_no=term) | Q(patient_id=term) | Q(institution__code=term)), False

    @admin.display(description="institution", ordering="institution__code")
    def institution_code(self, obj):
        return obj.institution.code

    @admin.display(description="total cost", ordering="total_cost")
    def total_cost_col(self, obj):
        return num_cell(money(obj.total_cost))

    @admin.display(description="self pay", ordering="self_pay")
    def self_pay_col(self, obj):
        return num_cell(money(obj.self_pay))

    @admin.display(description="特病单议 special review")
    def special_review_link(self, obj):
        review = SpecialReview.objects.filter(case=obj).first()
        if review is None:
            return "—"
        return admin_link(review, f"{review.get_status_display()} · approved cost {money(review.approved_cost)}")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        case = self.get_object(request, object_id)
        if case is not None and request.user.has_perm("drg.add_correctionrequest"):
            extra_context["correction_url"] = (
                reverse("admin:drg_correctionrequest_add") + f"?case={case.pk}&institution={case.institution_id}"
            )
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(CaseCorrection)
class CaseCorrectionAdmin(ReadOnlyAdmin):
    list_display = ("changed_at", "case_link", "source", "changed_by", "changes", "reason")
    list_filter = ("source", "case__region", "case__fund")
    search_fields = ("case__case_no",)
    list_select_related = ("case__institution", "changed_by")
    date_hierarchy = "changed_at"

    @admin.display(description="case")
    def case_link(self, obj):
        return admin_link(obj.case, f"{obj.case.case_no} @ {obj.case.institution.code}")

    @admin.display(description="before → after")
    def changes(self, obj):
        keys = sorted(set(obj.before) | set(obj.after))
        return format_html_join(
            "", "<div><b>{}</b>: {} → {}</div>", ((k, obj.before.get(k, "—"), obj.after.get(k, "—")) for k in keys)
        )


# --- review queues -----------------------------------------------------------------------------

class CaseOfInstitutionForm(forms.ModelForm):
    """A record about a case names the case's own institution."""

    def clean(self):
        data = super().clean()
        case, institution = data.get("case"), data.get("institution")
        if case and institution and case.institution_id != institution.pk:
            self.add_error("case", "this case belongs to another institution")
        return data


class CorrectionRequestForm(CaseOfInstitutionForm):
    """A change names the stored case and the fields to change; a late case names its new case_no and
    the whole row, checked here by the hospital API's rules (drg.services.late_case_row)."""

    class Meta:
        model = CorrectionRequest
        fields = ("institution", "kind", "case", "case_no", "proposed", "reason")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "kind" in self.fields:
            self.fields["kind"].required = False  # left out: a change, as before late cases existed

    def clean_kind(self):
        return self.cleaned_data.get("kind") or CorrectionRequest.Kind.CHANGE

    def clean(self):
        from drg.services import CasesInvalid, LateCaseRefused, late_case_row

        data = super().clean()
        proposed, kind = data.get("proposed"), data.get("kind")
        if proposed is not None and not isinstance(proposed, dict):
            self.add_error("proposed", 'give a JSON object of case fields, e.g. {"drg_code": "GB25"}')
            return data
        if kind == CorrectionRequest.Kind.CHANGE:
            if not data.get("case") and "case" not in self.errors:
                self.add_error("case", "a change names the stored case to change")
            if data.get("case_no"):
                self.add_error("case_no", "only a late case has a case_no here; a change names the stored case")
            return data
        if kind != CorrectionRequest.Kind.LATE_CASE:
            return data
        if data.get("case"):
            self.add_error("case", "a late case is not stored yet: leave the case empty (approval creates it)")
        if not data.get("case_no"):
            self.add_error("case_no", "a late case needs its case_no")
        institution = data.get("institution")
        if self.errors or institution is None or proposed is None:
            return data
        try:
            data["proposed"] = late_case_row(institution=institution, case_no=data["case_no"], proposed=proposed)
        except CasesInvalid as exc:
            for error in exc.errors:
                self.add_error("proposed", f"{error.field}: {error.message}" if error.field else error.message)
        except LateCaseRefused as exc:
            self.add_error("case_no", exc.message)
        return data


@admin.register(CorrectionRequest)
class CorrectionRequestAdmin(ReviewAdmin):
    form = CorrectionRequestForm
    list_display = ("id", "kind", "institution", "case_link", "proposed_changes", "reason", "status_badge", "submitted_at", "decided_by", "decided_at")
    list_filter = ("status", "kind", "institution__region", "institution")
    search_fields = ("case_no", "case__case_no", "case__patient_id", "institution__code", "institution__name")
    list_select_related = ("institution", "case")
    raw_id_fields = ("case",)
    autocomplete_fields = ("institution",)
    readonly_fields = ("proposed_changes",)

    @admin.display(description="case")
    def case_link(self, obj):
        if obj.case_id is not None:
            return admin_link(obj.case, obj.case.case_no)
        return format_html("{} <i>(late case, not stored yet)</i>", obj.case_no)

    @admin.display(description="stored → proposed")
    def proposed_changes(self, obj):
        """A change — pending: the case as stored → as proposed; decided: what was proposed (the case
        corrections list shows what an approval changed). A late case: its whole proposed row."""
        if obj is None or obj.pk is None or not isinstance(obj.proposed, dict):
            return "—"
        if obj.kind == CorrectionRequest.Kind.LATE_CASE:
            known = [k for k in CORRECTABLE_CASE_FIELDS if k in obj.proposed]  # the row in its usual order
            rest = sorted(set(obj.proposed) - set(known))
            return format_html(
                "<div><b>new case {}</b> (补报 late case)</div>{}", obj.case_no,
                format_html_join("", "<div><b>{}</b> = {}</div>", ((k, obj.proposed[k]) for k in [*known, *rest])),
            )
        if not is_pending(obj):
            return format_html_join("", "<div><b>{}</b> = {}</div>", sorted(obj.proposed.items()))
        case = obj.case
        return format_html_join(
            "", "<div><b>{}</b>: {} → {}</div>",
            ((k, getattr(case, k, "?"), v) for k, v in sorted(obj.proposed.items())),
        )


@admin.register(SpecialReview)
class SpecialReviewAdmin(ReviewAdmin):
    form = CaseOfInstitutionForm
    list_display = ("case_link", "institution", "requested_col", "approved_col", "status_badge", "reason", "submitted_at", "decided_by")
    list_filter = ("status", "institution__region", "case__fund", "institution")
    search_fields = ("case__case_no", "case__patient_id", "institution__code", "institution__name")
    list_select_related = ("institution", "case")
    raw_id_fields = ("case",)
    autocomplete_fields = ("institution",)

    def get_readonly_fields(self, request, obj=None):
        # the approved cost is set by the decision, not typed into the record
        return [*super().get_readonly_fields(request, obj), "approved_cost"]

    @admin.display(description="case")
    def case_link(self, obj):
        return admin_link(obj.case, obj.case.case_no)

    @admin.display(description="requested cost", ordering="requested_cost")
    def requested_col(self, obj):
        return num_cell(money(obj.requested_cost))

    @admin.display(description="approved cost", ordering="approved_cost")
    def approved_col(self, obj):
        return num_cell(money(obj.approved_cost))


# The hospital API's credentials screen is owned by the API (drg/api/admin.py).
try:
    from drg.api import admin as _credential_admin  # noqa: F401,E402
except ImportError as exc:  # pragma: no cover - before the API's admin exists
    if getattr(exc, "name", None) not in ("drg.api.admin", "drg.api"):
        raise
    _credential_admin = None
