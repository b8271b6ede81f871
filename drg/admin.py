"""Admin for catalogs, cases and the case review queues — plus the building blocks every app's admin
uses (BureauAdmin, HistoryAdmin, ReviewAdmin, formatting helpers). See docs/admin.md.

The admin is an interface: it translates a click into one service call (budget.services,
settlement.services, common.reviews) and maps PermissionDenied / ValidationError to a message.
"""
from __future__ import annotations

from django.utils.translation import gettext_lazy as _
import datetime as dt
import io
import json
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.conf import settings
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from common.reviews import (
    APPROVED,
    CREATED_IT,
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

EXPORT_MAX_ROWS = 100_000


def changelist_xlsx(model_admin, request, queryset) -> HttpResponse:
    """The list the officer is looking at (its columns, filters, search and order) as an Excel workbook.
    Text cells that a spreadsheet would read as a formula are escaped (common.spreadsheet)."""
    from django.contrib.admin.utils import label_for_field, lookup_field
    from django.utils.html import strip_tags
    from openpyxl import Workbook
    from openpyxl.styles import Font

    from common.spreadsheet import safe_cell_text

    fields = [f for f in model_admin.get_list_display(request) if f not in ("action_checkbox", "links", "pool_link")]
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = str(model_admin.model._meta.verbose_name_plural)[:31]
    headers = [str(label_for_field(f, model_admin.model, model_admin)) for f in fields]
    sheet.append([safe_cell_text(h) for h in headers])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for obj in queryset[:EXPORT_MAX_ROWS]:
        row = []
        for name in fields:
            try:
                _field, _attr, value = lookup_field(name, obj, model_admin)
            except (AttributeError, ObjectDoesNotExist):
                value = None
            if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
                row.append(value)
            elif value is None:
                row.append("")
            elif isinstance(value, bool):
                row.append(str(_("是") if value else _("否")))
            elif hasattr(value, "isoformat"):
                row.append(value.replace(tzinfo=None) if getattr(value, "tzinfo", None) else value)
            else:
                text = strip_tags(str(value)).replace("&nbsp;", " ").strip()
                plain = text.replace(",", "")
                try:  # a formatted amount (1,234.56) goes back to a number
                    row.append(Decimal(plain) if plain and plain[0].isdigit() and plain.replace(".", "", 1).isdigit() else safe_cell_text(text))
                except ArithmeticError:
                    row.append(safe_cell_text(text))
        sheet.append(row)
    sheet.freeze_panes = "A2"
    for index, header in enumerate(headers, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = max(10, min(40, 2 * len(header) + 4))
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = HttpResponse(buffer.getvalue(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="{model_admin.model._meta.model_name}-{stamp}.xlsx"'
    return response


class BureauAdmin(admin.ModelAdmin):
    """Every bureau screen: a POST the user may not make answers 403 (an auditor changes nothing),
    including a POST of an action the user does not have. Every list exports to Excel as shown
    (the "导出 Excel" button keeps the list's filters, search and order)."""

    list_per_page = 50
    change_list_template = "admin/bureau_change_list.html"

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path("export.xlsx", self.admin_site.admin_view(self.export_view), name="%s_%s_export" % info),
            *super().get_urls(),
        ]

    def export_view(self, request):
        """GET with the changelist's own query string: the same rows, as Excel."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        return changelist_xlsx(self, request, changelist.get_queryset(request))

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
        label=_("核定金额"), required=False, max_digits=16, decimal_places=2, min_value=0,
        help_text=_("留空则按申请金额核定"),
    )
    reason = forms.CharField(label=_("理由"), required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))

    def __init__(self, *args, decision: str, amount_label: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if decision == REJECTED:
            del self.fields["amount"]
            self.fields["reason"].required = True
            self.fields["reason"].label = _("驳回理由")
        else:
            self.fields["reason"].label = _("备注")
            if amount_label is None:
                del self.fields["amount"]
            else:
                self.fields["amount"].label = amount_label


DECISION_TITLES = {APPROVED: _("通过"), REJECTED: _("驳回")}


class AssignedFilter(admin.SimpleListFilter):
    title = _("经办审核人")
    parameter_name = "assigned"

    def lookups(self, request, model_admin):
        return [("me", _("指派给我")), ("nobody", _("未指派"))]

    def queryset(self, request, queryset):
        if self.value() == "me":
            return queryset.filter(assigned_to=request.user)
        if self.value() == "nobody":
            return queryset.filter(assigned_to__isnull=True)
        return queryset


class ReviewAdmin(HistoryAdmin):
    """A review queue: pending records are approved or rejected one by one (buttons on the record) or
    in bulk (actions with an intermediate form for the amount or the reason), through common.reviews.
    Decided records are read-only; status and decision fields are never edited by hand."""

    # assigned_to is set by the assign action, which checks who may review
    decision_fields = ("status", "decided_by", "decided_at", "rejection_reason", "created_by", "assigned_to")
    change_form_template = "admin/review_change_form.html"
    actions = ["approve_selected", "reject_selected", "assign_selected"]

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

    @admin.display(description=_("状态"), ordering="status")
    def status_badge(self, obj):
        return status_badge(obj)

    @admin.display(description=_("等待天数"))
    def waiting(self, obj):
        """Days since submission while pending, red and flagged past REVIEW_OVERDUE_DAYS (⚙)."""
        since = getattr(obj, "submitted_at", None) or getattr(obj, "created_at", None)
        if since is None or not is_pending(obj):
            return "—"
        days = (timezone.now() - since).days
        if days >= settings.REVIEW_OVERDUE_DAYS:
            return format_html('<span style="color:#b3261e;font-weight:bold;white-space:nowrap">{} {}</span>', days, _("⚠ 超期"))
        return num_cell(f"{days:,}")

    @admin.display(description=_("经办审核人"), ordering="assigned_to__username")
    def assigned_col(self, obj):
        return getattr(obj, "assigned_to", None) or "—"

    def get_list_display(self, request):
        shown = list(super().get_list_display(request))
        if self._assignable() and "assigned_col" not in shown:
            shown.append("assigned_col")
        return shown

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        return [*filters, AssignedFilter] if self._assignable() else filters

    def _assignable(self) -> bool:
        return any(f.name == "assigned_to" for f in self.model._meta.fields)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self._assignable():
            actions.pop("assign_selected", None)
        return actions

    @admin.action(description=_("指派审核人"), permissions=["review"])
    def assign_selected(self, request, queryset):
        from django.contrib.auth import get_user_model

        users = get_user_model().objects.filter(is_active=True, is_staff=True).order_by("username")
        reviewers = [u for u in users if u.has_perm(review_spec(self.model).permission)]
        chosen = request.POST.get("assignee")
        if chosen is not None:
            target = next((u for u in reviewers if str(u.pk) == chosen), None)
            if chosen and target is None:
                self.message_user(request, _("所选人员不能审核此类记录"), messages.ERROR)
                return None
            pending = [r for r in queryset if is_pending(r)]
            type(queryset.model).objects.filter(pk__in=[r.pk for r in pending]).update(assigned_to=target)
            self.message_user(
                request, _("已将 %(n)s 条待审记录指派给 %(who)s。") % {"n": len(pending), "who": target or _("（无人）")}, messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("指派审核人"),
            "opts": self.model._meta,
            "records": list(queryset),
            "reviewers": reviewers,
        }
        return TemplateResponse(request, "admin/review_assign.html", context)

    def amount_label(self) -> str | None:
        spec = review_spec(self.model)
        if not spec.amount_field:
            return None
        return self.model._meta.get_field(spec.amount_field).verbose_name  # 核定费用 / 核定金额

    # bulk actions
    @admin.action(description=_("通过所选"), permissions=["review"])
    def approve_selected(self, request, queryset):
        return self._decide_many(request, queryset, APPROVED, "approve_selected")

    @admin.action(description=_("驳回所选"), permissions=["review"])
    def reject_selected(self, request, queryset):
        return self._decide_many(request, queryset, REJECTED, "reject_selected")

    def _decide_many(self, request, queryset, decision: str, action_name: str):
        form = DecisionForm(request.POST if "apply" in request.POST else None, decision=decision, amount_label=self.amount_label())
        if "amount" in form.fields:
            form.fields["amount"].help_text = _("留空则每条按其申请金额核定；填写则对所选每条记录适用同一金额")
        if form.is_bound and form.is_valid():
            batch = reviews_decide(
                records=list(queryset), user=request.user, decision=decision,
                amount=form.cleaned_data.get("amount"), reason=form.cleaned_data.get("reason", ""),
            )
            for record in batch.decided:
                self.log_change(request, record, str(DECISION_TITLES[decision]))
            if batch.decided:
                self.message_user(request, _("%(decision)s：已处理 %(n)s 条记录。") % {"decision": DECISION_TITLES[decision], "n": len(batch.decided)}, messages.SUCCESS)
            for record, why in batch.refused:
                self.message_user(request, f"{record}：{why}", messages.ERROR)
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
                self.log_change(request, record, str(DECISION_TITLES[decision]))
                self.message_user(request, _("%(decision)s：%(record)s 已处理。") % {"decision": DECISION_TITLES[decision], "record": record}, messages.SUCCESS)
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
            extra_context["review_blocked_by_maker"] = extra_context["review_blocked"] == str(CREATED_IT)
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

    @admin.action(description=_("签发接口密钥"), permissions=["issue_key"])
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
    title = _("出院年份")
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

    title = _("出院月份")
    parameter_name = "discharge_month"

    def lookups(self, request, model_admin):
        return [(f"{m:02d}", _("%(m)s 月") % {"m": f"{m:02d}"}) for m in range(1, 13)]

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


class InputFilter(admin.ListFilter):
    """A filter typed into the sidebar (one or more text/date inputs), kept in the query string with the
    list's other filters. Subclasses name their inputs and turn the values into a filter."""

    template = "admin/input_filter.html"
    inputs: tuple[tuple[str, str, str], ...] = ()  # (parameter, label, input type)

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.values = {}
        for name, _label, _kind in self.inputs:
            if name in params:
                value = params.pop(name)
                value = value[-1] if isinstance(value, list) else value
                self.values[name] = (value or "").strip()[:64]

    def has_output(self):
        return True

    def expected_parameters(self):
        return [name for name, _label, _kind in self.inputs]

    def choices(self, changelist):
        yield {
            "inputs": [(name, label, kind, self.values.get(name, "")) for name, label, kind in self.inputs],
            "keep": [(k, v) for k, v in changelist.get_filters_params().items() if k not in self.expected_parameters()],
            "clear_url": changelist.get_query_string(remove=self.expected_parameters()),
            "active": any(self.values.values()),
        }

    def queryset(self, request, queryset):
        return queryset


def _date_or_none(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


class DischargeRangeFilter(InputFilter):
    title = _("出院日期")
    field = "discharge_date"
    inputs = (("discharge_from", _("自"), "date"), ("discharge_to", _("至"), "date"))

    def queryset(self, request, queryset):
        start, end = _date_or_none(self.values.get("discharge_from", "")), _date_or_none(self.values.get("discharge_to", ""))
        if start:
            queryset = queryset.filter(**{f"{self.field}__gte": start})
        if end:
            queryset = queryset.filter(**{f"{self.field}__lte": end})
        return queryset


class DrgCodeFilter(InputFilter):
    title = _("DRG 编码")
    field = "drg_code"
    inputs = (("drg", _("编码开头"), "text"),)

    def queryset(self, request, queryset):
        code = self.values.get("drg", "").upper()
        return queryset.filter(**{f"{self.field}__startswith": code}) if code else queryset


def case_search(queryset, term: str, *, prefix: str = ""):
    """Partial case number (from its start: the index serves it), exact patient ID, an institution's
    code or part of its name."""
    from django.db.models import Q

    term = term.strip()[:64]
    if not term:
        return queryset
    return queryset.filter(
        Q(**{f"{prefix}case_no__startswith": term}) | Q(**{f"{prefix}patient_id": term})
        | Q(institution__code=term) | Q(institution__name__contains=term)
    )


def _case_label(name: str) -> str:
    try:
        return str(Case._meta.get_field(name).verbose_name)
    except Exception:  # a key that is not a case field: shown as stored
        return name


def _int_or_none(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


class CaseCorrectionInline(ReadOnlyInline):
    model = CaseCorrection
    fields = ("changed_at", "source", "changed_by", "before", "after", "reason")
    readonly_fields = fields
    verbose_name_plural = _("更正记录")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("changed_by")


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    """Cases are read-only here: they come from the bundle and the hospital API; a change to a case of a
    finalized period goes through a correction request, which records a CaseCorrection."""

    list_display = ("case_no", "institution_code", "fund", "patient_id", "discharge_date", "drg_code", "total_cost_col", "self_pay_col", "discharge_status", "tcm_treatment")
    list_filter = (
        DischargeRangeFilter, DrgCodeFilter, "region", "fund", DischargeYearFilter, DischargeMonthFilter, "institution__category",
        "institution", "discharge_status", "tcm_treatment",
    )
    list_select_related = ("institution",)
    search_fields = ("case_no", "patient_id")
    search_help_text = _("病案号（可输入部分）、患者编号、机构编码或机构名称")
    show_full_result_count = False
    inlines = (CaseCorrectionInline,)  # settlement.admin adds the valuation results of clearing runs
    change_form_template = "admin/drg/case/change_form.html"
    readonly_fields = ("special_review_link",)

    def get_search_results(self, request, queryset, search_term):
        return case_search(queryset, search_term), False

    @admin.display(description=_("定点医疗机构"), ordering="institution__code")
    def institution_code(self, obj):
        return format_html('<span title="{}">{}</span>', obj.institution.name, obj.institution.code)

    @admin.display(description=_("总费用"), ordering="total_cost")
    def total_cost_col(self, obj):
        return num_cell(money(obj.total_cost))

    @admin.display(description=_("个人自付"), ordering="self_pay")
    def self_pay_col(self, obj):
        return num_cell(money(obj.self_pay))

    @admin.display(description=_("特病单议"))
    def special_review_link(self, obj):
        review = SpecialReview.objects.filter(case=obj).first()
        if review is None:
            return "—"
        return admin_link(review, f"{review.get_status_display()} · {_('核定费用')} {money(review.approved_cost)}")

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

    @admin.display(description=_("病例"))
    def case_link(self, obj):
        return admin_link(obj.case, f"{obj.case.case_no} · {obj.case.institution.code} {obj.case.institution.name}")

    @admin.display(description=_("更正前 → 更正后"))
    def changes(self, obj):
        keys = sorted(set(obj.before) | set(obj.after))
        return format_html_join(
            "", "<div><b>{}</b>：{} → {}</div>", ((_case_label(k), obj.before.get(k, "—"), obj.after.get(k, "—")) for k in keys)
        )


# --- review queues -----------------------------------------------------------------------------

class CaseOfInstitutionForm(forms.ModelForm):
    """A record about a case names the case's own institution."""

    def clean(self):
        data = super().clean()
        case, institution = data.get("case"), data.get("institution")
        if case and institution and case.institution_id != institution.pk:
            self.add_error("case", _("该病例属于其他机构"))
        return data


UNCHANGED = ""
BOOLEAN_CHOICES = [(UNCHANGED, "—"), ("true", _("是")), ("false", _("否"))]


def _proposal_field(name: str) -> forms.Field:
    """The form field of one correctable case field, optional (empty = not proposed)."""
    model_field = Case._meta.get_field(name)
    if isinstance(model_field, models.BooleanField):
        return forms.TypedChoiceField(label=model_field.verbose_name, choices=BOOLEAN_CHOICES, required=False, empty_value=None,
                                      coerce=lambda v: v == "true")
    field = model_field.formfield(required=False)
    if isinstance(field, forms.TypedChoiceField):
        field.choices = [(UNCHANGED, "—"), *model_field.choices]
    if isinstance(field, forms.DateField):
        field.widget = forms.DateInput(attrs={"type": "date"})
    field.help_text = ""
    field.initial = None  # empty = not proposed (never the model's default)
    return field


def _json_value(value):
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _shown(case: Case | None, name: str) -> str:
    if case is None:
        return "—"
    value = getattr(case, name)
    if isinstance(value, bool):
        return str(_("是") if value else _("否"))
    display = getattr(case, f"get_{name}_display", None)
    if display is not None:
        return str(display())
    if isinstance(value, Decimal):
        return money(value)
    return str(value)


class CorrectionRequestForm(CaseOfInstitutionForm):
    """A correction as the case's own fields, each with its current value beside it (a change: fill
    only the fields to change; a late case: the whole new case row, checked by the hospital API's rules
    in drg.services.late_case_row). The fields become the request's ``proposed`` object."""

    class Meta:
        model = CorrectionRequest
        fields = ("institution", "kind", "case", "case_no", "reason")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "kind" in self.fields:
            self.fields["kind"].required = False  # left out: a change, as before late cases existed
        case = self.instance.case if self.instance.pk and self.instance.case_id else None
        if case is None:
            case_id = self.initial.get("case") or (self.data.get("case") if self.is_bound else None)
            case = Case.objects.filter(pk=case_id).first() if str(case_id or "").isdigit() else None
        self.current_case = case
        proposed = self.instance.proposed if isinstance(self.instance.proposed, dict) else {}
        for name in CORRECTABLE_CASE_FIELDS:
            field = self.fields[f"p_{name}"]
            field.help_text = format_html("{}：<b>{}</b>", _("当前"), _shown(case, name)) if case is not None else ""
            if name in proposed and not self.is_bound:
                value = proposed[name]
                self.initial[f"p_{name}"] = ("true" if value else "false") if isinstance(value, bool) else value

    def proposal_fields(self):
        return [self[f"p_{name}"] for name in CORRECTABLE_CASE_FIELDS]

    def clean_kind(self):
        return self.cleaned_data.get("kind") or CorrectionRequest.Kind.CHANGE

    def _proposed(self) -> dict:
        proposed = {}
        for name in CORRECTABLE_CASE_FIELDS:
            value = self.cleaned_data.get(f"p_{name}")
            if value is None or value == "":
                continue
            proposed[name] = _json_value(value)
        return proposed

    def clean(self):
        from drg.services import CasesInvalid, LateCaseRefused, late_case_row

        data = super().clean()
        kind = data.get("kind")
        proposed = self._proposed()
        self.instance.proposed = proposed
        if kind == CorrectionRequest.Kind.CHANGE:
            if not data.get("case") and "case" not in self.errors:
                self.add_error("case", _("更正须指定要更正的已入库病例"))
            if data.get("case_no"):
                self.add_error("case_no", _("只有补报病例填写病案号；更正请指定已入库病例"))
            if not proposed:
                self.add_error(None, _("请至少填写一项要更正的字段"))
            case = data.get("case")
            if case is not None:
                same = [name for name, value in proposed.items() if _json_value(getattr(case, name)) == value]
                for name in same:
                    self.add_error(f"p_{name}", _("与当前值相同"))
            return data
        if kind != CorrectionRequest.Kind.LATE_CASE:
            return data
        if data.get("case"):
            self.add_error("case", _("补报病例尚未入库：请勿选择病例（批准后自动创建）"))
        if not data.get("case_no"):
            self.add_error("case_no", _("补报病例须填写病案号"))
        institution = data.get("institution")
        if self.errors or institution is None:
            return data
        try:
            self.instance.proposed = late_case_row(institution=institution, case_no=data["case_no"], proposed=proposed)
        except CasesInvalid as exc:
            for error in exc.errors:
                target = f"p_{error.field}" if error.field in CORRECTABLE_CASE_FIELDS else None
                self.add_error(target, error.message if target else (f"{error.field}: {error.message}" if error.field else error.message))
        except LateCaseRefused as exc:
            self.add_error("case_no", exc.message)
        return data


for _name in CORRECTABLE_CASE_FIELDS:  # declared fields of the form: one per correctable case field
    CorrectionRequestForm.base_fields[f"p_{_name}"] = CorrectionRequestForm.declared_fields[f"p_{_name}"] = _proposal_field(_name)


@admin.register(CorrectionRequest)
class CorrectionRequestAdmin(ReviewAdmin):
    form = CorrectionRequestForm
    change_form_template = "admin/drg/correctionrequest/change_form.html"
    list_display = ("request_no", "kind", "institution", "case_link", "proposed_changes", "reason", "status_badge", "submitted_at", "waiting", "decided_by")
    list_filter = ("status", "kind", "institution__region", "institution")
    search_fields = ("case_no", "case__case_no", "case__patient_id", "institution__code", "institution__name")
    list_select_related = ("institution", "case")
    raw_id_fields = ("case",)
    autocomplete_fields = ("institution",)
    readonly_fields = ("proposed_changes",)

    def get_fieldsets(self, request, obj=None):
        fields = ["institution", "kind", "case", "case_no", "reason"]
        if obj is not None and not self.has_change_permission(request, obj):
            return [(None, {"fields": [*fields, "proposed_changes", *[f for f in self.decision_fields if hasattr(obj, f)]]})]
        return [
            (None, {"fields": fields}),
            (_("申请更正的内容（只填要更正的字段；补报病例填整条病例）"), {"fields": [f"p_{name}" for name in CORRECTABLE_CASE_FIELDS]}),
            *([(_("审核"), {"fields": [f for f in self.decision_fields if hasattr(obj, f)]})] if obj is not None else []),
        ]

    @admin.display(description=_("编号"), ordering="id")
    def request_no(self, obj):
        return f"#{obj.pk}"

    @admin.display(description=_("病例"))
    def case_link(self, obj):
        if obj.case_id is not None:
            return admin_link(obj.case, obj.case.case_no)
        return format_html("{} <i>{}</i>", obj.case_no, _("（补报病例，尚未入库）"))

    @admin.display(description=_("当前 → 申请"))
    def proposed_changes(self, obj):
        """A change — pending: the case as stored → as proposed; decided: what was proposed (the case
        corrections list shows what an approval changed). A late case: its whole proposed row."""
        if obj is None or obj.pk is None or not isinstance(obj.proposed, dict):
            return "—"
        label = {name: Case._meta.get_field(name).verbose_name for name in CORRECTABLE_CASE_FIELDS}
        if obj.kind == CorrectionRequest.Kind.LATE_CASE:
            known = [k for k in CORRECTABLE_CASE_FIELDS if k in obj.proposed]  # the row in its usual order
            rest = sorted(set(obj.proposed) - set(known))
            return format_html(
                "<div><b>{} {}</b></div>{}", _("补报病例"), obj.case_no,
                format_html_join("", "<div><b>{}</b>：{}</div>", ((label.get(k, k), obj.proposed[k]) for k in [*known, *rest])),
            )
        if not is_pending(obj):
            return format_html_join("", "<div><b>{}</b>：{}</div>", ((label.get(k, k), v) for k, v in sorted(obj.proposed.items())))
        case = obj.case
        return format_html_join(
            "", "<div><b>{}</b>：{} → {}</div>",
            ((label.get(k, k), _shown(case, k), v) for k, v in sorted(obj.proposed.items())),
        )


@admin.register(SpecialReview)
class SpecialReviewAdmin(ReviewAdmin):
    form = CaseOfInstitutionForm
    list_display = ("case_link", "institution", "requested_col", "approved_col", "status_badge", "reason", "submitted_at", "waiting", "decided_by")
    list_filter = ("status", "institution__region", "case__fund", "institution")
    search_fields = ("case__case_no", "case__patient_id", "institution__code", "institution__name")
    list_select_related = ("institution", "case")
    raw_id_fields = ("case",)
    autocomplete_fields = ("institution",)

    def get_readonly_fields(self, request, obj=None):
        # the approved cost is set by the decision, not typed into the record
        return [*super().get_readonly_fields(request, obj), "approved_cost"]

    @admin.display(description=_("病例"))
    def case_link(self, obj):
        return admin_link(obj.case, obj.case.case_no)

    @admin.display(description=_("申请费用"), ordering="requested_cost")
    def requested_col(self, obj):
        return num_cell(money(obj.requested_cost))

    @admin.display(description=_("核定费用"), ordering="approved_cost")
    def approved_col(self, obj):
        return num_cell(money(obj.approved_cost))



# The hospital API's credentials screen is owned by the API (drg/api/admin.py).
try:
    from drg.api import admin as _credential_admin  # noqa: F401,E402
except ImportError as exc:  # pragma: no cover - before the API's admin exists
    if getattr(exc, "name", None) not in ("drg.api.admin", "drg.api"):
        raise
    _credential_admin = None
