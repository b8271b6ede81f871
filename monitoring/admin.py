"""Bureau workspace for monitoring (docs/monitoring.md): the indicators dashboard (institution vs the
pool vs its own previous year, CMI trend, sortable, Excel), screening parameters under maker-checker,
screening runs, the findings queue (confirm / dismiss with a reason, propose point adjustments and
evaluation deductions), evaluation deductions and scores."""
from __future__ import annotations

import json
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from common.reviews import error_text
from drg.admin import HistoryAdmin, ReadOnlyAdmin, ReadOnlyInline, ReviewAdmin, admin_link, num_cell, status_badge
from drg.choices import Fund
from drg.models import Institution, Region
from monitoring import exports, selectors, services
from monitoring.choices import FindingStatus
from monitoring.domain.indicators import RATIO_FIELDS, period_key
from monitoring.domain.parameters import ScreeningParameters
from monitoring.models import (
    EvaluationDeduction, EvaluationScore, Finding, FindingAdjustment, FindingCase, IndicatorValue,
    ScreeningParameterSet, ScreeningRun,
)

FORM_TEMPLATE = "admin/monitoring/form.html"


def _form_page(admin_obj, request, *, title: str, form, intro: str = "", records=None, action_name: str = ""):
    context = {
        **admin_obj.admin_site.each_context(request),
        "title": title, "opts": admin_obj.model._meta, "form": form, "intro": intro,
        "records": records or [], "action_name": action_name,
    }
    return TemplateResponse(request, FORM_TEMPLATE, context)


class PoolForm(forms.Form):
    region = forms.ModelChoiceField(queryset=Region.objects.all(), label=_("统筹区"))
    fund = forms.ChoiceField(choices=Fund.choices, label=_("险种"))
    year = forms.IntegerField(min_value=2000, max_value=2100, label=_("年度"))


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("理由"), max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


# --- indicators ---------------------------------------------------------------------------------------

SORTABLE = ("institution_code", "cases", "points", *RATIO_FIELDS)


@admin.register(IndicatorValue)
class IndicatorValueAdmin(ReadOnlyAdmin):
    list_display = ("institution_code", "period", "fund", "year", "cases", "points", "cmi", "cost_per_point", "time_index", "cost_index",
                    "high_share", "low_share", "readmission_share", "self_pay_share", "special_review_share", "transfer_share")
    list_filter = ("region", "fund", "year")
    search_fields = ("institution_code", "period")
    change_list_template = "admin/monitoring/indicatorvalue/change_list.html"

    def get_urls(self):
        return [
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="monitoring_indicatorvalue_dashboard"),
            path("export/", self.admin_site.admin_view(self.export_view), name="monitoring_indicatorvalue_export"),
            path("refresh/", self.admin_site.admin_view(self.refresh_view), name="monitoring_indicatorvalue_refresh"),
            *super().get_urls(),
        ]

    def _pool(self, request):
        form = PoolForm(request.GET or None)
        if not form.is_valid():
            return form, None
        return form, (form.cleaned_data["region"], form.cleaned_data["fund"], form.cleaned_data["year"])

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form, pool = self._pool(request)
        context = {**self.admin_site.each_context(request), "title": _t("运行指标看板"), "opts": self.model._meta, "form": form}
        if pool is not None:
            region, fund, year = pool
            context.update(self._dashboard(request, region, fund, year))
        return TemplateResponse(request, "admin/monitoring/dashboard.html", context)

    def _dashboard(self, request, region, fund, year) -> dict:
        rows = selectors.stored_indicators(region_id=region.pk, fund=fund, year=year)
        if not rows:
            return {"empty": True}
        run = rows[0].run
        previous = selectors.previous_year_indicators(region_id=region.pk, fund=fund, year=year, through_month=run.month or 12)
        period = request.GET.get("period") or str(year)
        periods = sorted({r.period for r in rows}, key=period_key)
        if period not in periods:
            period = str(year)
        names = dict(Institution.objects.filter(region=region).values_list("code", "name"))
        pool_row = next((r for r in rows if r.institution_code == "*" and r.period == period), None)
        sort = request.GET.get("sort") if request.GET.get("sort") in SORTABLE else "institution_code"
        descending = request.GET.get("dir") == "desc"
        table_rows = [r for r in rows if r.period == period and r.institution_code != "*"]
        present = [r for r in table_rows if getattr(r, sort) is not None]
        missing = [r for r in table_rows if getattr(r, sort) is None]
        present.sort(key=lambda r: getattr(r, sort), reverse=descending)
        fields = ("cases", "points", *RATIO_FIELDS)
        table = []
        for r in present + missing:
            prev = previous.get((r.institution_code, period))
            table.append({
                "code": r.institution_code, "name": names.get(r.institution_code, ""),
                "cells": [(getattr(r, f), getattr(pool_row, f) if pool_row else None, getattr(prev, f) if prev else None) for f in fields],
            })
        series: dict[str, list] = {}
        pool_series = []
        for r in rows:
            if r.period == str(year):
                continue
            month = int(r.period[5:7])
            if r.institution_code == "*":
                pool_series.append((month, r.cmi))
            else:
                series.setdefault(r.institution_code, []).append((month, r.cmi))
        for points in [*series.values(), pool_series]:
            points.sort()
        query = request.GET.copy()
        headers = []
        for f in ("institution_code", *fields):
            query["sort"], query["dir"] = f, ("asc" if sort == f and descending else "desc" if sort == f else "asc")
            headers.append((f, exports.INDICATOR_LABELS.get(f, f), "?" + query.urlencode(), sort == f))
        return {
            "rows": table, "headers": headers, "period": period, "periods": periods, "run": run,
            "chart": mark_safe(exports.cmi_trend_svg(series=series, pool=pool_series)),
            "export_query": request.GET.urlencode(), "has_previous": bool(previous),
        }

    def export_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form, pool = self._pool(request)
        if pool is None:
            raise PermissionDenied
        region, fund, year = pool
        rows = sorted(selectors.stored_indicators(region_id=region.pk, fund=fund, year=year),
                      key=lambda r: ("" if r.institution_code == "*" else "1" + r.institution_code, period_key(r.period)))
        names = dict(Institution.objects.filter(region=region).values_list("code", "name"))
        content = exports.indicators_workbook(title=f"{region.code} {region.name} {fund} {year}", rows=rows, names=names)
        response = HttpResponse(content, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        response["Content-Disposition"] = f'attachment; filename="indicators-{region.code}-{fund}-{year}.xlsx"'
        return response

    def refresh_view(self, request):
        if not request.user.has_perm("monitoring.review_finding"):
            raise PermissionDenied
        form = PoolForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            count = services.indicators_refresh(region_id=form.cleaned_data["region"].pk, fund=form.cleaned_data["fund"], year=form.cleaned_data["year"])
            self.message_user(request, _t("已重新计算 %(n)s 行指标") % {"n": count}, messages.SUCCESS if count else messages.WARNING)
            return HttpResponseRedirect(reverse("admin:monitoring_indicatorvalue_dashboard") + "?" + f"region={form.cleaned_data['region'].pk}&fund={form.cleaned_data['fund']}&year={form.cleaned_data['year']}")
        return _form_page(self, request, title=_t("按需重新计算运行指标"), form=form)


# --- screening parameters ------------------------------------------------------------------------------

class ParameterSetForm(forms.ModelForm):
    values = forms.CharField(
        label=_("参数（JSON）"), widget=forms.Textarea(attrs={"rows": 24, "cols": 70, "style": "font-family:monospace"}),
        help_text=_("名称: 值；未列出的参数取规范默认值。保存后为草稿，由另一人批准后生效。"),
    )

    class Meta:
        model = ScreeningParameterSet
        fields = ("region", "values", "reason")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            current = self.instance.values if self.instance.pk else ScreeningParameters().as_mapping()
            self.initial["values"] = json.dumps(current, ensure_ascii=False, indent=1)

    def clean_values(self):
        raw = self.cleaned_data["values"]
        if "\x00" in raw or len(raw) > 20_000:
            raise ValidationError(_("参数文本无效"))
        try:
            data = json.loads(raw)
            return ScreeningParameters.from_mapping(data).as_mapping()
        except (ValueError, TypeError) as exc:
            raise ValidationError(str(exc)) from exc


@admin.register(ScreeningParameterSet)
class ScreeningParameterSetAdmin(ReviewAdmin):
    form = ParameterSetForm
    list_display = ("region", "reason", "status_badge", "created_by", "created_at", "decided_by", "decided_at")
    list_filter = ("status", "region")
    readonly_fields = ("values_table",)

    def get_fields(self, request, obj=None):
        if obj is not None and obj.status != "draft":
            return ("region", "values_table", "reason", "status", "created_by", "decided_by", "decided_at", "rejection_reason")
        return ("region", "values", "reason", "values_table") if obj else ("region", "values", "reason")

    @admin.display(description=_("参数"))
    def values_table(self, obj):
        defaults = ScreeningParameters().as_mapping()
        rows = format_html("").join(
            format_html("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", k, v, "" if defaults.get(k) == v else _t("（非默认）"))
            for k, v in (obj.values or {}).items()
        )
        return format_html("<table>{}</table>", rows)


# --- screening runs -----------------------------------------------------------------------------------

@admin.register(ScreeningRun)
class ScreeningRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "region", "fund", "year", "run", "previous_run", "finding_count", "created_by", "created_at")
    list_filter = ("region", "fund", "year")
    change_list_template = "admin/monitoring/screeningrun/change_list.html"

    def get_urls(self):
        return [path("screen/", self.admin_site.admin_view(self.screen_view), name="monitoring_screeningrun_screen"), *super().get_urls()]

    def screen_view(self, request):
        if not request.user.has_perm("monitoring.review_finding"):
            raise PermissionDenied
        form = PoolForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                screening = services.screening_run_record(user=request.user, **form.cleaned_data)
            except ValidationError as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
            else:
                self.message_user(request, _t("筛查完成：%(n)s 条疑点") % {"n": screening.finding_count}, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:monitoring_finding_changelist") + f"?year={screening.year}&fund={screening.fund}")
        return _form_page(self, request, title=_t("运行疑点筛查"), form=form, intro=_t("以统筹区的有效结算运行为数据源，按生效的筛查参数筛查。"))


# --- findings queue ------------------------------------------------------------------------------------

class FindingCaseInline(ReadOnlyInline):
    model = FindingCase
    fields = ("case_institution_code", "case_no")
    readonly_fields = fields
    max_num = 0
    verbose_name = _("证据病例")
    verbose_name_plural = _("证据病例")


class FindingAdjustmentInline(ReadOnlyInline):
    model = FindingAdjustment
    fields = ("adjustment_link", "adjustment_status")
    readonly_fields = fields
    verbose_name_plural = _("违规扣点建议")

    @admin.display(description=_("扣点"))
    def adjustment_link(self, obj):
        return admin_link(obj.adjustment, f"{obj.adjustment.drg_code} × {obj.adjustment.multiple}")

    @admin.display(description=_("状态"))
    def adjustment_status(self, obj):
        return obj.adjustment.get_status_display()


class AdjustmentForm(forms.Form):
    drg_code = forms.CharField(label=_("病组"), max_length=16)
    multiple = forms.DecimalField(label=_("扣点倍数"), min_value=Decimal("0.0001"), max_value=Decimal("100"), max_digits=8, decimal_places=4, initial=Decimal("1"))
    reason = forms.CharField(label=_("理由"), max_length=400, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


@admin.register(Finding)
class FindingAdmin(HistoryAdmin):
    list_display = ("id", "rule_col", "institution", "fund", "year", "value", "reference", "basis", "case_count", "status_col", "reviewed_by")
    list_filter = ("status", "rule", "fund", "year", "region", "basis")
    search_fields = ("institution__code", "institution__name")
    list_select_related = ("institution", "reviewed_by")
    inlines = [FindingAdjustmentInline, FindingCaseInline]
    actions = ["confirm_selected", "dismiss_selected", "propose_deduction_selected"]
    fields = ("region", "fund", "year", "period", "rule", "institution", "value", "reference", "basis", "detail", "case_count",
              "status", "review_reason", "reviewed_by", "reviewed_at", "screening", "deduction_link", "actions_col")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_review_permission(self, request):
        return request.user.has_perm("monitoring.review_finding")

    @admin.display(description=_("规则"), ordering="rule")
    def rule_col(self, obj):
        return obj.get_rule_display()

    @admin.display(description=_("状态"), ordering="status")
    def status_col(self, obj):
        return status_badge(obj)

    @admin.display(description=_("评价扣分"))
    def deduction_link(self, obj):
        deduction = getattr(obj, "deduction", None)
        return admin_link(deduction, f"{deduction.points} ({deduction.get_status_display()})") if deduction else "—"

    @admin.display(description=_("操作"))
    def actions_col(self, obj):
        if obj.status != FindingStatus.CONFIRMED:
            return "—"
        url = reverse("admin:monitoring_finding_propose_adjustment", args=[obj.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, _t("提出违规扣点"))

    def _reviewed(self, request, queryset, *, confirm: bool, action_name: str, title: str):
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            done = 0
            for finding in queryset:
                try:
                    services.finding_review(finding=finding, user=request.user, confirm=confirm, reason=form.cleaned_data["reason"])
                    done += 1
                except (PermissionDenied, ValidationError) as exc:
                    self.message_user(request, f"#{finding.pk}: {error_text(exc)}", messages.ERROR)
            if done:
                self.message_user(request, _t("已处理 %(n)s 条疑点") % {"n": done}, messages.SUCCESS)
            return None
        return _form_page(self, request, title=title, form=form, records=list(queryset), action_name=action_name)

    @admin.action(description=_("确认所选疑点（填写理由）"), permissions=["review"])
    def confirm_selected(self, request, queryset):
        return self._reviewed(request, queryset, confirm=True, action_name="confirm_selected", title=_t("确认疑点"))

    @admin.action(description=_("排除所选疑点（填写理由）"), permissions=["review"])
    def dismiss_selected(self, request, queryset):
        return self._reviewed(request, queryset, confirm=False, action_name="dismiss_selected", title=_t("排除疑点"))

    @admin.action(description=_("为所选已确认疑点提出评价扣分（按参数）"), permissions=["review"])
    def propose_deduction_selected(self, request, queryset):
        for finding in queryset:
            try:
                services.finding_propose_deduction(finding=finding, user=request.user)
            except (PermissionDenied, ValidationError) as exc:
                self.message_user(request, f"#{finding.pk}: {error_text(exc)}", messages.ERROR)
            else:
                self.message_user(request, _t("疑点 #%(id)s 已提出评价扣分，待另一人批准") % {"id": finding.pk}, messages.SUCCESS)

    def get_urls(self):
        return [
            path("<int:pk>/propose-adjustment/", self.admin_site.admin_view(self.propose_adjustment_view), name="monitoring_finding_propose_adjustment"),
            *super().get_urls(),
        ]

    def propose_adjustment_view(self, request, pk: int):
        if not self.has_review_permission(request):
            raise PermissionDenied
        finding = get_object_or_404(Finding, pk=pk)
        form = AdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.finding_propose_adjustment(finding=finding, user=request.user, **form.cleaned_data)
            except (PermissionDenied, ValidationError) as exc:
                form.add_error(None, error_text(exc))
            else:
                self.message_user(request, _t("已起草违规扣点，待另一人批准"), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:monitoring_finding_change", args=[finding.pk]))
        return _form_page(self, request, title=_t("提出违规扣点 · %(f)s") % {"f": finding}, form=form)


# --- evaluation ------------------------------------------------------------------------------------------

@admin.register(EvaluationDeduction)
class EvaluationDeductionAdmin(ReviewAdmin):
    list_display = ("institution", "fund", "year", "rule", "points", "finding", "status_badge", "created_by", "decided_by")
    list_filter = ("status", "rule", "fund", "year")
    fields = ("finding", "institution", "fund", "year", "rule", "points", "status", "created_by", "decided_by", "decided_at", "rejection_reason")
    readonly_fields = ("finding", "institution", "fund", "year", "rule")

    def has_add_permission(self, request):
        return False


class ScoreForm(forms.Form):
    institution = forms.ModelChoiceField(queryset=Institution.objects.select_related("region"), label=_("机构"))
    fund = forms.ChoiceField(choices=Fund.choices, label=_("险种"))
    year = forms.IntegerField(min_value=2000, max_value=2100, label=_("年度"))
    override = forms.DecimalField(label=_("调整后得分（可空）"), required=False, min_value=0, max_value=100, max_digits=6, decimal_places=2)
    override_reason = forms.CharField(label=_("调整理由"), required=False, max_length=500)


@admin.register(EvaluationScore)
class EvaluationScoreAdmin(HistoryAdmin):
    list_display = ("institution", "fund", "year", "computed", "override", "score_col", "override_reason", "status_col", "created_by", "decided_by")
    list_filter = ("status", "fund", "year")
    fields = ("institution", "fund", "year", "computed", "override", "override_reason", "status", "created_by", "decided_by", "decided_at", "rejection_reason")
    readonly_fields = fields
    actions = ["approve_selected", "reject_selected"]
    change_list_template = "admin/monitoring/evaluationscore/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_approve_permission(self, request):
        return request.user.has_perm("monitoring.approve_evaluationscore")

    @admin.display(description=_("生效得分"))
    def score_col(self, obj):
        return num_cell(str(obj.score))

    @admin.display(description=_("状态"), ordering="status")
    def status_col(self, obj):
        return status_badge(obj)

    def get_urls(self):
        return [path("compute/", self.admin_site.admin_view(self.compute_view), name="monitoring_evaluationscore_compute"), *super().get_urls()]

    def compute_view(self, request):
        if not request.user.has_perm("monitoring.add_evaluationscore"):
            raise PermissionDenied
        form = ScoreForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                record = services.evaluation_score_draft(user=request.user, **form.cleaned_data)
            except ValidationError as exc:
                form.add_error(None, error_text(exc))
            else:
                self.message_user(request, _t("评价得分草稿：%(s)s，待另一人批准") % {"s": record.score}, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:monitoring_evaluationscore_changelist"))
        return _form_page(self, request, title=_t("计算评价得分"), form=form,
                          intro=_t("得分 = max(0, 100 − 已确认疑点的已批准扣分之和)，每条规则每年计一次；可填写调整后得分及理由。"))

    def _decide(self, request, queryset, *, approve: bool, action_name: str):
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if approve:
            form.fields["reason"].required = False
        if form.is_bound and form.is_valid():
            for record in queryset:
                try:
                    services.evaluation_score_decide(record=record, user=request.user, approve=approve, reason=form.cleaned_data["reason"])
                except (PermissionDenied, ValidationError) as exc:
                    self.message_user(request, f"#{record.pk}: {error_text(exc)}", messages.ERROR)
                else:
                    self.message_user(request, f"#{record.pk}: {record.institution.code} {record.get_status_display()}", messages.SUCCESS)
            return None
        return _form_page(self, request, title=_t("批准评价得分") if approve else _t("驳回评价得分"), form=form, records=list(queryset), action_name=action_name)

    @admin.action(description=_("批准所选得分（计入年度清算质量扣款）"), permissions=["approve"])
    def approve_selected(self, request, queryset):
        return self._decide(request, queryset, approve=True, action_name="approve_selected")

    @admin.action(description=_("驳回所选得分（填写理由）"), permissions=["approve"])
    def reject_selected(self, request, queryset):
        return self._decide(request, queryset, approve=False, action_name="reject_selected")
