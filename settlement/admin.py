"""Admin for clearing inputs (itemized claims, point adjustments, evaluations: review queues) and the
clearing runs: start (queued on Celery), watch, compare, finalize (maker-checker), download
statements; plus the pool page. See docs/admin.md."""
from __future__ import annotations

from django.utils.translation import gettext_lazy as _
import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import DecimalField, OuterRef, Subquery
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy

from common.reviews import error_text
from drg.admin import (
    BureauAdmin,
    CaseAdmin,
    ReadOnlyAdmin,
    ReadOnlyInline,
    ReviewAdmin,
    admin_link,
    money,
    num_cell,
    points,
    pretty_json,
    status_badge,
)
from drg.choices import Fund
from drg.models import Case, DrgGroup, Institution, Region
from settlement import admin_views, selectors, statements
from settlement.choices import ACTIVE_RUN_STATUSES, PAID_RUN_STATUSES, RESULT_RUN_STATUSES, RunKind, RunStatus
from settlement.models import ClearingRun, Evaluation, InstitutionLine, ItemizedClaim, PointAdjustment

# --- clearing inputs: review queues ---------------------------------------------------------------


class MonthFilter(admin.SimpleListFilter):
    """月份 of a first-of-month date field."""

    title = _("月份")
    parameter_name = "month"

    def lookups(self, request, model_admin):
        months = model_admin.model.objects.dates("month", "month", order="DESC")
        return [(m.strftime("%Y-%m"), m.strftime("%Y-%m")) for m in months[:36]]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            month = dt.datetime.strptime(value, "%Y-%m").date()
        except ValueError:
            return queryset
        return queryset.filter(month=month)


class YearFilter(admin.SimpleListFilter):
    title = _("年度")
    parameter_name = "year"

    def lookups(self, request, model_admin):
        years = model_admin.model.objects.order_by("-year").values_list("year", flat=True).distinct()
        return [(str(y), str(y)) for y in years]

    def queryset(self, request, queryset):
        if self.value() and self.value().isdigit():
            return queryset.filter(year=int(self.value()))
        return queryset


class ItemizedClaimForm(forms.ModelForm):
    class Meta:
        model = ItemizedClaim
        fields = ("institution", "claim_no", "fund", "month", "patient_id", "claimed_amount")
        help_texts = {"month": _("填该月任意一天，保存为当月第一天")}

    def clean_month(self):
        value = self.cleaned_data["month"]
        return value.replace(day=1) if value else value


class CaseWithResultsAdmin(CaseAdmin):
    """drg's case page plus the valuation of every clearing run that valued the case (SETTLEMENT.md §2.6)."""

    change_form_template = "admin/settlement/case_change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        case = self.get_object(request, object_id)
        if case is not None:
            extra_context["valuations"] = selectors.case_results_by_run(case=case)
        return super().change_view(request, object_id, form_url, extra_context)


admin.site.unregister(Case)
admin.site.register(Case, CaseWithResultsAdmin)


@admin.register(ItemizedClaim)
class ItemizedClaimAdmin(ReviewAdmin):
    form = ItemizedClaimForm
    list_display = ("claim_no", "institution", "fund", "month_col", "patient_id", "claimed_col", "approved_col", "source", "status_badge", "decided_by", "decided_at")
    list_filter = ("status", "source", "region", "fund", MonthFilter, "institution")
    search_fields = ("claim_no", "patient_id", "institution__code", "institution__name")
    list_select_related = ("institution",)
    autocomplete_fields = ("institution",)
    readonly_fields = ("region", "approved_amount", "source")

    def save_model(self, request, obj, form, change):
        obj.region_id = obj.institution.region_id
        super().save_model(request, obj, form, change)

    @admin.display(description=_("月份"), ordering="month")
    def month_col(self, obj):
        return obj.month.strftime("%Y-%m")

    @admin.display(description=_("申报"), ordering="claimed_amount")
    def claimed_col(self, obj):
        return num_cell(money(obj.claimed_amount))

    @admin.display(description=_("核定"), ordering="approved_amount")
    def approved_col(self, obj):
        return num_cell(money(obj.approved_amount))


@admin.register(PointAdjustment)
class PointAdjustmentAdmin(ReviewAdmin):
    list_display = ("institution", "fund", "year", "drg_code", "multiple", "penalty_col", "reason", "status_badge", "created_by", "decided_by", "decided_at")
    list_filter = ("status", "institution__region", "fund", YearFilter, "institution")
    search_fields = ("institution__code", "institution__name", "drg_code", "reason")
    list_select_related = ("institution", "created_by")
    autocomplete_fields = ("institution",)
    fields = ("institution", "fund", "year", "drg_code", "multiple", "reason", "status", "created_by", "decided_by", "decided_at")

    def get_queryset(self, request):
        base = DrgGroup.objects.filter(region_id=OuterRef("institution__region_id"), year=OuterRef("year"), code=OuterRef("drg_code"))
        return super().get_queryset(request).annotate(
            group_base=Subquery(base.values("base_points")[:1], output_field=DecimalField(max_digits=14, decimal_places=4))
        )

    @admin.display(description=_("扣点"))
    def penalty_col(self, obj):
        base = getattr(obj, "group_base", None)
        return num_cell(points(obj.multiple * base) if base is not None else _("病组未知"))


@admin.register(Evaluation)
class EvaluationAdmin(ReviewAdmin):
    list_display = ("institution", "fund", "year", "score", "status_badge", "created_by", "decided_by", "decided_at")
    list_filter = ("status", "institution__region", "fund", YearFilter, "institution")
    search_fields = ("institution__code", "institution__name")
    list_select_related = ("institution", "created_by")
    autocomplete_fields = ("institution",)
    fields = ("institution", "fund", "year", "score", "status", "created_by", "decided_by", "decided_at")


# --- clearing runs --------------------------------------------------------------------------------

class StartRunForm(forms.Form):
    region = forms.ModelChoiceField(label=_("统筹区"), queryset=Region.objects.all())
    fund = forms.ChoiceField(label=_("险种"), choices=Fund.choices)
    year = forms.IntegerField(label=_("年度"), min_value=2000, max_value=2100)
    month = forms.TypedChoiceField(
        label=_("期间"), required=False, coerce=int, empty_value=None,
        choices=[("", _("年度清算")), *((m, _("%(month)02d 月预付（1–%(month)s 月累计）") % {"month": m}) for m in range(1, 13))],
    )

    def clean(self):
        """A pool-year without an approved budget, a payment scheme or a catalog is refused here, with
        what is missing, before any run is recorded."""
        from settlement.services import clearing_run_check_inputs

        data = super().clean()
        if data.get("region") is not None and data.get("fund") and data.get("year"):
            try:
                clearing_run_check_inputs(region=data["region"], fund=data["fund"], year=data["year"])
            except ValidationError as exc:
                raise forms.ValidationError(exc.messages) from exc
        return data


class AcknowledgeForm(forms.Form):
    note = forms.CharField(label=gettext_lazy("处理说明"), max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
                           help_text=gettext_lazy("失败原因与处理情况；确认后该失败清算不再计入首页待办"))


class AcknowledgedFilter(admin.SimpleListFilter):
    title = gettext_lazy("失败已确认")
    parameter_name = "acknowledged"

    def lookups(self, request, model_admin):
        return [("no", _("未确认")), ("yes", _("已确认"))]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(acknowledged_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(acknowledged_at__isnull=False)
        return queryset


class InstitutionLineInline(ReadOnlyInline):
    model = InstitutionLine
    verbose_name_plural = _("机构结算")
    ANNUAL = ("institution", "case_count", "raw_points", "penalty_points", "uplift", "points", "point_value", "gross_amount", "self_pay",
              "fund_payment", "itemized_fund", "surplus", "prepaid", "withheld", "quality_deduction", "settled_before", "balance", "downloads")
    MONTHLY = ("institution", "case_count", "points", "point_value", "due", "prepaid_to_date", "settled_before", "prepay", "withheld",
               "self_pay", "itemized_fund", "downloads")

    def get_fields(self, request, obj=None):
        return self.MONTHLY if obj is not None and obj.kind == RunKind.MONTHLY else self.ANNUAL

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("institution").order_by("institution__code")

    @admin.display(description=_("结算单"))
    def downloads(self, obj):
        args = [obj.run_id, obj.institution_id]
        return format_html(
            '<a href="{}">Excel</a> · <a href="{}">PDF</a> · <a href="{}">CSV</a>',
            reverse("admin:settlement_clearingrun_institution_statement", args=[*args, "xlsx"]),
            reverse("admin:settlement_clearingrun_institution_statement", args=[*args, "pdf"]),
            reverse("admin:settlement_clearingrun_institution_statement", args=[*args, "csv"]),
        )


class FailStuckRunForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("原因"), max_length=1000, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=gettext_lazy("例如：后台计算进程已被终止，清算停滞"),
    )


@admin.register(ClearingRun)
class ClearingRunAdmin(BureauAdmin):
    """Runs are written by settlement.services only: the admin starts, shows, compares, finalizes and
    exports them. A finalized run and its lines are read-only for everyone."""

    change_form_template = "admin/settlement/clearingrun/change_form.html"
    list_display = ("id", "pool", "period", "status_col", "case_count", "point_value_col", "distributed_col", "progress_col", "started_by", "created_at", "finalized_by", "links")
    list_filter = ("region", "fund", YearFilter, "kind", "status", "month", AcknowledgedFilter)
    list_select_related = ("region", "started_by", "finalized_by", "superseded_by")
    search_fields = ("region__code", "fingerprint")
    search_help_text = _("批次号、统筹区编码或输入指纹")
    inlines = (InstitutionLineInline,)
    actions = ["finalize_selected", "fail_stuck_selected", "download_xlsx", "download_csv", "download_year_end_pack"]
    fieldsets = (
        (_("清算"), {"fields": ("region", "fund", "year", "month", "kind", "status", "standing", "progress_col", "error", "acknowledgement")}),
        (_("结果"), {"fields": ("totals_table",)}),
        (_("耗时"), {"fields": ("timings_table", "case_count", "created_at", "started_at", "finished_at")}),
        (_("经办/审核"), {"fields": ("started_by", "finalized_by", "finalized_at", "failed_by", "heartbeat_at")}),
        (gettext_lazy("参数修订（本次清算使用的现行参数）"), {"fields": ("revisions_used",)}),
        (_("可复现"), {"fields": ("fingerprint", "parameters_json"), "classes": ("collapse",)}),
    )

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().lstrip("#")
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        return super().get_search_results(request, queryset, search_term)

    # --- permissions: runs are never edited by hand
    def has_add_permission(self, request):
        return request.user.has_perm("settlement.start_clearingrun")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.status in PAID_RUN_STATUSES:  # payment orders, binding or superseded
            return False
        return super().has_delete_permission(request, obj)

    def has_finalize_permission(self, request):
        return request.user.has_perm("settlement.finalize_clearingrun")

    def get_readonly_fields(self, request, obj=None):
        return [f for _, opts in self.fieldsets for f in opts["fields"]]

    # --- columns
    @admin.display(description=_("基金池"), ordering="region__code")
    def pool(self, obj):
        return format_html(
            '<a href="{}" title="{}" style="white-space:nowrap">{} · {} · {}</a>',
            reverse("admin:settlement_pool", args=[obj.region_id, obj.fund, obj.year]), _("基金池页面"), obj.region.name, obj.get_fund_display(), obj.year,
        )

    @admin.display(description=_("期间"), ordering="month")
    def period(self, obj):
        return _("%(month)02d 月预付") % {"month": obj.month} if obj.kind == RunKind.MONTHLY else _("年度清算")

    @admin.display(description=_("状态"), ordering="status")
    def status_col(self, obj):
        if obj.status == RunStatus.SUPERSEDED and obj.successor is not None:
            return format_html('{} → <a href="{}">#{}</a>', status_badge(obj),
                               reverse("admin:settlement_clearingrun_change", args=[obj.successor.pk]), obj.successor.pk)
        return status_badge(obj)

    @admin.display(description=_("有效性"))
    def standing(self, obj):
        """Binding, superseded (with a link to the successor) or not final, with the predecessor."""
        link = lambda run: format_html('<a href="{}">{}</a>', reverse("admin:settlement_clearingrun_change", args=[run.pk]), _("清算 #%(pk)s") % {"pk": run.pk})
        parts = [statements.run_standing(obj)]
        if obj.status == RunStatus.SUPERSEDED and obj.successor is not None:
            parts = [format_html(_("已被 {} 取代，非有效结算"), link(obj.successor))]
        if obj.supersedes_id:
            parts.append(format_html(_("取代 {}"), link(obj.supersedes)))
        return format_html_join(mark_safe(" · "), "{}", ((p,) for p in parts))

    @admin.display(description=_("点值"))
    def point_value_col(self, obj):
        return num_cell(points(obj.totals.get("point_value")))

    @admin.display(description=_("可分配 A / 预算"))
    def distributed_col(self, obj):
        return num_cell(money(obj.totals.get("distributed", obj.totals.get("budget_to_date"))))

    @admin.display(description=_("进度"))
    def progress_col(self, obj):
        seconds = (obj.timings or {}).get("total")
        return admin_views.progress_text(obj.progress) + (" · " + str(_("%(s)s 秒") % {"s": f"{seconds:.1f}"}) if isinstance(seconds, (int, float)) else "")

    @admin.display(description="")
    def links(self, obj):
        if obj.status not in RESULT_RUN_STATUSES:
            return ""
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">Excel</a> · <a href="{}">PDF</a>',
            reverse("admin:settlement_clearingrun_compare", args=[obj.pk]), _("对比"),
            reverse("admin:settlement_clearingrun_statement", args=[obj.pk, "xlsx"]),
            reverse("admin:settlement_clearingrun_statement", args=[obj.pk, "pdf"]),
        )

    @admin.display(description=_("合计"))
    def totals_table(self, obj):
        if not obj.totals:
            return "—"
        return format_html(
            "<table>{}</table>",
            format_html_join("", "<tr><th>{}</th><td style='text-align:right'>{}</td></tr>", admin_views.totals_rows(obj.totals)),
        )

    @admin.display(description=_("各阶段耗时"))
    def timings_table(self, obj):
        if not obj.timings:
            return "—"
        def cell(value):
            if isinstance(value, list):  # per-chunk timings of a scaled-out run: one line a chunk
                return format_html_join(
                    mark_safe("<br>"), "{}",
                    (("，".join(f"{admin_views.stage_label(k)} {v}" for k, v in item.items()) if isinstance(item, dict) else str(item),) for item in value),
                )
            return f"{value}"

        return format_html(
            "<table>{}</table>",
            format_html_join("", "<tr><th>{}</th><td style='text-align:right'>{}</td></tr>", ((admin_views.stage_label(k), cell(v)) for k, v in obj.timings.items())),
        )

    @admin.display(description=gettext_lazy("参数修订"))
    def revisions_used(self, obj):
        """The revisions the run recorded: each opens the full snapshot of the values it used."""
        revisions = list(obj.parameter_revisions.select_related("region").order_by("kind"))
        if not revisions:
            return _("（本次清算未记录参数修订：修订记录开始之前的清算，其参数见下方“参数”）")
        return format_html_join(
            mark_safe("<br>"), "{} · {}",
            ((rev.get_kind_display(), admin_link(rev, f"r{rev.revision} {rev.get_status_display()} · {rev.reason[:80]}")) for rev in revisions),
        )

    @admin.display(description=gettext_lazy("失败确认"))
    def acknowledgement(self, obj):
        if obj.acknowledged_at is None:
            return "—"
        return format_html("{} · {} · {}", obj.acknowledged_at.strftime("%Y-%m-%d %H:%M"), obj.acknowledged_by or "—", obj.acknowledgement_note)

    @admin.display(description=_("参数"))
    def parameters_json(self, obj):
        rows = admin_views.parameter_rows(obj.parameters)
        if not rows:
            return "—"
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    # --- start: the "add" screen starts a run through the service, queued on Celery
    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        from settlement.services import clearing_run_start

        initial = {"year": timezone.localdate().year}
        for key in ("region", "fund", "year", "month"):
            if request.GET.get(key):
                initial[key] = request.GET[key]
        form = StartRunForm(request.POST if request.method == "POST" else None, initial=initial)
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            try:
                run = clearing_run_start(
                    region=data["region"], fund=data["fund"], year=data["year"], month=data["month"], user=request.user, run_async=True
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                self.log_addition(request, run, str(_("发起清算")))
                self.message_user(request, _("清算批次 %(run)s 已排队，本页显示其进度。") % {"run": run}, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:settlement_clearingrun_change", args=[run.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("发起清算"),
            "opts": self.model._meta,
            "form": form,
            "active": [
                (run, admin_views.progress_text(run.progress))
                for run in ClearingRun.objects.filter(status__in=ACTIVE_RUN_STATUSES).select_related("region")
            ],
        }
        return TemplateResponse(request, "admin/settlement/clearingrun/start.html", context)

    # --- fail a stuck run by hand (approver, with a reason)
    @admin.action(description=gettext_lazy("标记所选排队/运行中的清算为失败（需填写原因）"), permissions=["finalize"])
    def fail_stuck_selected(self, request, queryset):
        from settlement.services import clearing_run_fail_stuck

        runs = list(queryset.select_related("region"))
        form = FailStuckRunForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            for run in runs:
                try:
                    clearing_run_fail_stuck(run=run, user=request.user, reason=form.cleaned_data["reason"])
                except ValidationError as exc:
                    self.message_user(request, _("清算 #%(pk)s：%(error)s") % {"pk": run.pk, "error": error_text(exc)}, messages.ERROR)
                else:
                    self.message_user(request, _("清算 #%(pk)s 已标记失败，基金池已释放。") % {"pk": run.pk}, messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("标记清算失败"),
            "opts": self.model._meta,
            "form": form,
            "runs": runs,
        }
        return TemplateResponse(request, "admin/settlement/clearingrun/fail.html", context)

    # --- finalize (approver; the starter is refused by the service)
    @admin.action(description=_("定稿所选清算"), permissions=["finalize"])
    def finalize_selected(self, request, queryset):
        """Bulk finalization asks first: the runs, their totals and who started each."""
        runs = list(queryset.select_related("region", "started_by"))
        if request.POST.get("confirmed") == "yes":
            for run in runs:
                self._finalize(request, run)
            return None
        return self._finalize_confirm(request, runs, bulk=True)

    def _finalize_confirm(self, request, runs, *, bulk: bool):
        from settlement.admin_views import totals_rows

        context = {
            **self.admin_site.each_context(request),
            "title": _("确认定稿"),
            "opts": self.model._meta,
            "runs": [
                {"run": run, "totals": totals_rows(run.totals), "lines": run.lines.count(), "mine": run.started_by_id == request.user.pk,
                 "url": reverse("admin:settlement_clearingrun_change", args=[run.pk])}
                for run in runs
            ],
            "bulk": bulk,
            "action_url": "" if bulk else reverse("admin:settlement_clearingrun_finalize", args=[runs[0].pk]),
            "cancel_url": reverse("admin:settlement_clearingrun_change", args=[runs[0].pk]) if not bulk else reverse("admin:settlement_clearingrun_changelist"),
            "selected": [run.pk for run in runs],
        }
        return TemplateResponse(request, "admin/settlement/clearingrun/finalize_confirm.html", context)

    def _finalize(self, request, run: ClearingRun) -> None:
        from settlement.services import clearing_run_finalize

        try:
            clearing_run_finalize(run=run, user=request.user)
        except PermissionDenied as exc:
            self.message_user(request, _("%(run)s：经办与审核须为不同人员，须由另一位审核人定稿。") % {"run": run}, messages.ERROR)
        except ValidationError as exc:
            self.message_user(request, f"{run}：{error_text(exc)}", messages.ERROR)
        else:
            self.log_change(request, run, str(_("定稿")))  # the cockpit's recent actions
            self.message_user(request, _("%(run)s 已定稿。") % {"run": run}, messages.SUCCESS)

    def finalize_view(self, request, object_id):
        if not self.has_finalize_permission(request):
            raise PermissionDenied
        run = get_object_or_404(ClearingRun.objects.select_related("region", "started_by"), pk=object_id)
        if request.method != "POST" or request.POST.get("confirmed") != "yes":
            return self._finalize_confirm(request, [run], bulk=False)
        self._finalize(request, run)
        return HttpResponseRedirect(reverse("admin:settlement_clearingrun_change", args=[run.pk]))

    # --- acknowledge a failed run (bureau staff, with a note)
    def has_acknowledge_permission(self, request):
        return request.user.has_perm("settlement.acknowledge_clearingrun")

    def acknowledge_view(self, request, object_id):
        from settlement.services import clearing_run_acknowledge

        if not self.has_acknowledge_permission(request):
            raise PermissionDenied
        run = get_object_or_404(ClearingRun.objects.select_related("region"), pk=object_id)
        change_url = reverse("admin:settlement_clearingrun_change", args=[run.pk])
        form = AcknowledgeForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                clearing_run_acknowledge(run=run, user=request.user, note=form.cleaned_data["note"])
            except ValidationError as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
            else:
                self.message_user(request, _("失败清算 #%(pk)s 已确认") % {"pk": run.pk}, messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": _("确认失败清算 #%(pk)s") % {"pk": run.pk},
            "opts": self.model._meta,
            "form": form,
            "run": run,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/settlement/clearingrun/acknowledge.html", context)

    # --- downloads
    @admin.action(description=_("下载结算单（Excel）"), permissions=["view"])
    def download_xlsx(self, request, queryset):
        return self._one_download(request, queryset, "xlsx")

    @admin.action(description=_("下载结算单（CSV）"), permissions=["view"])
    def download_csv(self, request, queryset):
        return self._one_download(request, queryset, "csv")

    @admin.action(description=_("年终结算包"), permissions=["view"])
    def download_year_end_pack(self, request, queryset):
        pools = {(run.region_id, run.year) for run in queryset}
        if len(pools) != 1:
            self.message_user(request, _("请选择同一统筹区、同一年度的清算批次"), messages.ERROR)
            return None
        region_id, year = pools.pop()
        return self.year_end_pack_view(request, region_id, year)

    def _one_download(self, request, queryset, ext):
        if queryset.count() != 1:
            self.message_user(request, _("请只选择一个清算批次下载"), messages.ERROR)
            return None
        return self.statement_view(request, queryset.get().pk, ext)

    def _file(self, content: bytes, filename: str, ext: str) -> HttpResponse:
        content_type = {
            "csv": "text/csv; charset=utf-8", "pdf": "application/pdf",
        }.get(ext, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        response = HttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def statement_view(self, request, object_id, ext, institution_id=None):
        if not self.has_view_permission(request) or ext not in ("xlsx", "csv", "pdf"):
            raise PermissionDenied
        run = get_object_or_404(ClearingRun.objects.select_related("region", "started_by", "finalized_by"), pk=object_id)
        institution = get_object_or_404(Institution, pk=institution_id) if institution_id is not None else None
        try:
            from settlement.statement_pdf import statement_pdf

            builder = {"xlsx": statements.statement_xlsx, "csv": statements.statement_csv, "pdf": statement_pdf}[ext]
            content = builder(run=run, institution=institution)
        except statements.StatementError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:settlement_clearingrun_change", args=[run.pk]))
        return self._file(content, statements.statement_filename(run=run, institution=institution, ext=ext), ext)

    def institution_statement_view(self, request, object_id, institution_id, ext):
        return self.statement_view(request, object_id, ext, institution_id=institution_id)

    def year_end_pack_view(self, request, region_id, year):
        if not self.has_view_permission(request):
            raise PermissionDenied
        region = get_object_or_404(Region, pk=region_id)
        try:
            content = statements.year_end_pack_xlsx(region=region, year=int(year))
        except statements.StatementError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:settlement_clearingrun_changelist"))
        return self._file(content, statements.year_end_pack_filename(region=region, year=int(year)), "xlsx")

    # --- urls and the run page
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("pool/<int:region_id>/<str:fund>/<int:year>/", wrap(lambda request, **kw: admin_views.pool_view(self, request, **kw)), name="settlement_pool"),
            path("year-end/<int:region_id>/<int:year>/pack.xlsx", wrap(self.year_end_pack_view), name="settlement_clearingrun_year_end_pack"),
            path("<int:object_id>/compare/", wrap(lambda request, object_id: admin_views.compare_view(self, request, object_id)), name="settlement_clearingrun_compare"),
            path("<int:object_id>/results/", wrap(lambda request, object_id: admin_views.results_view(self, request, object_id)), name="settlement_clearingrun_results"),
            path("<int:object_id>/finalize/", wrap(self.finalize_view), name="settlement_clearingrun_finalize"),
            path("<int:object_id>/acknowledge/", wrap(self.acknowledge_view), name="settlement_clearingrun_acknowledge"),
            path("<int:object_id>/statement.<str:ext>", wrap(self.statement_view), name="settlement_clearingrun_statement"),
            path(
                "<int:object_id>/institution/<int:institution_id>/statement.<str:ext>", wrap(self.institution_statement_view),
                name="settlement_clearingrun_institution_statement",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        run = self.get_object(request, object_id)
        if run is not None:
            has_results = run.status in RESULT_RUN_STATUSES
            earlier = statements.earlier_settlements(run=run) if has_results else []
            extra_context.update(
                successor=run.successor,
                earlier_settlements=earlier,
                earlier_total=sum((e.amount for e in earlier), 0),
                run=run,
                progress_text=admin_views.progress_text(run.progress),
                active=run.status in ACTIVE_RUN_STATUSES,
                has_results=has_results,
                pool_url=reverse("admin:settlement_pool", args=[run.region_id, run.fund, run.year]),
                compare_url=reverse("admin:settlement_clearingrun_compare", args=[run.pk]) if has_results else None,
                xlsx_url=reverse("admin:settlement_clearingrun_statement", args=[run.pk, "xlsx"]) if has_results else None,
                csv_url=reverse("admin:settlement_clearingrun_statement", args=[run.pk, "csv"]) if has_results else None,
                pdf_url=reverse("admin:settlement_clearingrun_statement", args=[run.pk, "pdf"]) if has_results else None,
                pack_url=reverse("admin:settlement_clearingrun_year_end_pack", args=[run.region_id, run.year])
                if run.kind == RunKind.ANNUAL and run.status == RunStatus.FINALIZED else None,
                results_url=reverse("admin:settlement_clearingrun_results", args=[run.pk]) if has_results else None,
                can_finalize=run.status == RunStatus.DRAFT and self.has_finalize_permission(request),
                started_by_me=run.started_by_id == request.user.pk,
                finalize_url=reverse("admin:settlement_clearingrun_finalize", args=[run.pk]),
                acknowledge_url=reverse("admin:settlement_clearingrun_acknowledge", args=[run.pk])
                if run.status == RunStatus.FAILED and run.acknowledged_at is None and self.has_acknowledge_permission(request) else None,
            )
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(InstitutionLine)
class InstitutionLineAdmin(ReadOnlyAdmin):
    list_display = ("run_link", "institution", "case_count", "points_col", "point_value_col", "fund_payment_col", "due_col", "prepay_col", "balance_col")
    list_filter = ("run__region", "run__fund", "run__year", "run__kind", "run__status", "institution")
    search_fields = ("institution__code", "institution__name")
    list_select_related = ("run__region", "institution")

    @admin.display(description=_("清算批次"), ordering="run")
    def run_link(self, obj):
        return admin_link(obj.run)

    @admin.display(description=_("点数"), ordering="points")
    def points_col(self, obj):
        return num_cell(points(obj.points))

    @admin.display(description=_("点值"))
    def point_value_col(self, obj):
        return num_cell(points(obj.point_value))

    @admin.display(description=_("统筹支付"))
    def fund_payment_col(self, obj):
        return num_cell(money(obj.fund_payment))

    @admin.display(description=_("应预付"))
    def due_col(self, obj):
        return num_cell(money(obj.due))

    @admin.display(description=_("本月预付"))
    def prepay_col(self, obj):
        return num_cell(money(obj.prepay))

    @admin.display(description=_("清算差额"))
    def balance_col(self, obj):
        return num_cell(money(obj.balance))


# --- the cockpit: the admin index shows what waits for the bureau (queues, pools) above the app list
_default_index = admin.site.index


def _cockpit_index(request, extra_context=None):
    return _default_index(request, {**admin_views.cockpit_context(request), **(extra_context or {})})


admin.site.index = _cockpit_index
