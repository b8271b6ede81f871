"""Admin for fiscal incentives (SETTLEMENT.md §7): the rules (editable, with history), the fiscal
budget lines, the payouts with their lines (read-only; approve / mark paid / download through
incentives.services) and the input records (review queues through common.reviews).

An interface only: each action makes one service call and turns PermissionDenied / ValidationError
into a message. Built on the bureau building blocks of drg.admin.
"""
from __future__ import annotations

from django.utils.translation import gettext_lazy as _
import io
from decimal import Decimal
import zipfile
from datetime import date

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from common.reviews import error_text
from drg.admin import HistoryAdmin, ReadOnlyInline, ReviewAdmin, money, num_cell, status_badge
from drg.models import Region
from incentives.choices import IncentiveBasis, PayeeKind, PayoutStatus
from incentives.exports import payout_csv_text, payout_xlsx_bytes
from incentives.models import (
    ChronicEnrollment,
    HospiceService,
    IncentiveBudget,
    IncentiveRule,
    Payout,
    PayoutLine,
    Screening,
    TcmWorkload,
)
from incentives.services import payout_approve, payout_mark_paid, payouts_compute

SOURCE_ADMIN = {
    "case": "drg_case",
    "chronic_enrollment": "incentives_chronicenrollment",
    "tcm_workload": "incentives_tcmworkload",
    "hospice_service": "incentives_hospiceservice",
    "screening": "incentives_screening",
}
SOURCE_NAMES = {
    "case": _("病例"), "chronic_enrollment": _("慢病纳管"), "tcm_workload": _("中医工作量"), "hospice_service": _("安宁疗护服务"),
    "screening": _("高风险人群筛查"),
}
SOURCE_LINK_LIMIT = 200  # beyond this, the id list would not fit a URL; the ids are listed instead
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --- rules and budget lines -------------------------------------------------------------------

def rule_pricing(*, rate, grade_amounts, amount) -> str:
    """30.00% 费用 / 三级手术 1,000.00 元，四级手术 2,000.00 元 / 500.00 元/单位."""
    if rate not in (None, ""):
        return str(_("费用的 %(pct)s") % {"pct": f"{Decimal(str(rate)) * 100:.2f}%"})
    if grade_amounts:
        return "，".join(str(_("%(grade)s 级手术 %(amount)s 元") % {"grade": g, "amount": money(a)}) for g, a in sorted(grade_amounts.items()))
    return str(_("%(amount)s 元/单位") % {"amount": money(amount)})


@admin.register(IncentiveRule)
class IncentiveRuleAdmin(HistoryAdmin):
    list_display = ("code", "name", "basis", "pricing", "public_only", "payee", "valid_from", "valid_to", "cap_col")
    list_filter = ("basis", "payee", "public_only")
    search_fields = ("code", "name")
    fieldsets = (
        (None, {"fields": ("code", "name", "basis", "payee", "public_only", "description")}),
        (_("金额"), {"fields": ("amount", "grade_amounts", "rate")}),
        (_("有效期与封顶"), {"fields": ("valid_from", "valid_to", "yearly_cap")}),
    )

    @admin.display(description=_("计奖标准"))
    def pricing(self, obj):
        return rule_pricing(rate=obj.rate, grade_amounts=obj.grade_amounts, amount=obj.amount)

    @admin.display(description=_("每年封顶"), ordering="yearly_cap")
    def cap_col(self, obj):
        return num_cell(money(obj.yearly_cap))


@admin.register(IncentiveBudget)
class IncentiveBudgetAdmin(HistoryAdmin):
    list_display = ("region", "year", "amount_col", "note")
    list_filter = ("region", "year")
    list_select_related = ("region",)

    @admin.display(description=_("预算金额"), ordering="amount")
    def amount_col(self, obj):
        return num_cell(money(obj.amount))


# --- payouts ----------------------------------------------------------------------------------

class PayoutLineInline(ReadOnlyInline):
    model = PayoutLine
    fields = ("payee_code", "institution", "rule_code", "count", "unit_amount", "rate", "basis_amount", "gross_amount", "capped_amount", "amount", "sources")
    readonly_fields = fields
    verbose_name_plural = _("明细")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("institution").order_by("payee_code", "rule_code")

    @admin.display(description=_("来源"))
    def sources(self, obj):
        ids = obj.source_ids or []
        label = _("%(n)s 条%(what)s记录") % {"n": f"{len(ids):,}", "what": SOURCE_NAMES.get(obj.source_model, obj.source_model)}
        if ids and len(ids) <= SOURCE_LINK_LIMIT:
            url = reverse(f"admin:{SOURCE_ADMIN[obj.source_model]}_changelist") + "?id__in=" + ",".join(map(str, ids))
            return format_html('<a href="{}">{}</a>', url, label)
        return f"{label}：{', '.join(map(str, ids[:20]))}{' …' if len(ids) > 20 else ''}"


class ComputeForm(forms.Form):
    region = forms.ModelChoiceField(queryset=Region.objects.all(), label=_("统筹区"))
    year = forms.IntegerField(label=_("年度"), min_value=2000, max_value=2100, initial=lambda: date.today().year - 1)


@admin.register(Payout)
class PayoutAdmin(HistoryAdmin):
    """Payouts are computed (the compute button, needs add permission), approved by another user
    (maker-checker), then marked paid; their numbers are never edited by hand."""

    list_display = ("__str__", "region", "year", "status_col", "total_col", "prorated", "computed_by", "computed_at", "approved_by", "paid_at")
    list_filter = ("status", "region", "year")
    list_select_related = ("region", "computed_by", "approved_by")
    readonly_fields = (
        "region", "year", "status", "computed_by", "computed_at", "approved_by", "approved_at", "paid_by", "paid_at",
        "gross_total", "capped_total", "budget_amount", "prorated", "total", "downloads", "rules_table",
    )
    fields = readonly_fields
    inlines = (PayoutLineInline,)
    actions = ("approve_selected", "mark_paid_selected", "download_csv", "download_excel")
    change_list_template = "admin/incentives/payout/change_list.html"

    # permissions: numbers come from the service; no hand edits, no deletes
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_compute_permission(self, request) -> bool:
        return request.user.has_perm("incentives.add_payout")

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm("incentives.approve_payout")

    def has_pay_permission(self, request) -> bool:
        return request.user.has_perm("incentives.pay_payout")

    @admin.display(description=_("状态"), ordering="status")
    def status_col(self, obj):
        return status_badge(obj)

    @admin.display(description=_("计算时规则"))
    def rules_table(self, obj):
        """The rules as they were when the payout was computed, one row a rule (not the stored JSON)."""
        rules = obj.rules_snapshot if obj is not None and isinstance(obj.rules_snapshot, list) else []
        if not rules:
            return "—"
        basis = dict(IncentiveBasis.choices)
        payee = dict(PayeeKind.choices)
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style='text-align:right'>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (r.get("code", ""), r.get("name", ""), basis.get(r.get("basis"), r.get("basis", "")),
                 rule_pricing(rate=r.get("rate"), grade_amounts=r.get("grade_amounts"), amount=r.get("amount")),
                 money(r.get("yearly_cap")) if r.get("yearly_cap") not in (None, "") else "—",
                 payee.get(r.get("payee"), r.get("payee", "")), _("是") if r.get("public_only") else _("否"))
                for r in rules if isinstance(r, dict)
            ),
        )
        head = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            _("规则编码"), _("规则名称"), _("计奖依据"), _("计奖标准"), _("每年封顶"), _("收款方"), _("仅限公立机构"),
        )
        return format_html('<table class="rules-snapshot"><thead>{}</thead><tbody>{}</tbody></table>', head, rows)

    @admin.display(description=_("应付合计"), ordering="total")
    def total_col(self, obj):
        return num_cell(money(obj.total))

    @admin.display(description=_("下载"))
    def downloads(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        return format_html(
            '<a href="{}">incentives.csv</a> · <a href="{}">incentives.xlsx</a>',
            reverse("admin:incentives_payout_download", args=[obj.pk, "csv"]),
            reverse("admin:incentives_payout_download", args=[obj.pk, "xlsx"]),
        )

    # actions: one service call per payout
    def _each(self, request, queryset, service, done):
        for payout in queryset.order_by("pk"):
            try:
                service(payout=payout, user=request.user)
            except (PermissionDenied, ValidationError) as exc:
                self.message_user(request, f"{payout}：{error_text(exc)}", messages.ERROR)
            else:
                self.log_change(request, payout, str(done))
                self.message_user(request, f"{payout}：{done}", messages.SUCCESS)

    def _confirm(self, request, queryset, *, action: str, service, done, title, what):
        """Approve / mark paid ask first: each payout's totals, its computer and approver."""
        payouts = list(queryset.select_related("region", "computed_by", "approved_by").order_by("pk"))
        if request.POST.get("confirmed") == "yes":
            return self._each(request, queryset, service, done)
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "what": what,
            "opts": self.model._meta,
            "payouts": [
                {"payout": p, "mine": p.computed_by_id == request.user.pk, "lines": p.lines.count(),
                 "amounts": [(_("封顶前合计"), money(p.gross_total)), (_("封顶后合计"), money(p.capped_total)),
                             (_("财政预算"), money(p.budget_amount)), (_("应付合计"), money(p.total))]}
                for p in payouts
            ],
            "action": action,
        }
        return TemplateResponse(request, "admin/incentives/payout/confirm.html", context)

    @admin.action(description=_("审核通过"), permissions=["approve"])
    def approve_selected(self, request, queryset):
        return self._confirm(
            request, queryset, action="approve_selected", service=payout_approve, done=_("已审核通过"), title=_("确认审核通过奖补发放"),
            what=_("审核通过后，奖补金额不可再更改，下一步由财务标记已支付。"),
        )

    @admin.action(description=_("标记已支付"), permissions=["pay"])
    def mark_paid_selected(self, request, queryset):
        return self._confirm(
            request, queryset, action="mark_paid_selected", service=payout_mark_paid, done=_("已标记已支付"), title=_("确认标记已支付"),
            what=_("标记已支付表示资金已拨付给收款方；此操作记入变更历史，不可撤销。"),
        )

    @admin.action(description=_("下载（CSV）"), permissions=["view"])
    def download_csv(self, request, queryset):
        return self._download(list(queryset.select_related("region")), "csv")

    @admin.action(description=_("下载（Excel）"), permissions=["view"])
    def download_excel(self, request, queryset):
        return self._download(list(queryset.select_related("region")), "xlsx")

    @staticmethod
    def _file(payout: Payout, kind: str) -> tuple[str, bytes]:
        stem = f"incentives-{payout.region.code}-{payout.year}-{payout.status}"
        if kind == "csv":
            return f"{stem}.csv", payout_csv_text(payout=payout).encode("utf-8")
        return f"{stem}.xlsx", payout_xlsx_bytes(payout=payout)

    def _download(self, payouts: list[Payout], kind: str) -> HttpResponse:
        if len(payouts) == 1:
            name, content = self._file(payouts[0], kind)
            response = HttpResponse(content, content_type="text/csv; charset=utf-8" if kind == "csv" else XLSX_TYPE)
        else:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for payout in payouts:
                    archive.writestr(*self._file(payout, kind))
            name, response = f"incentives-{kind}.zip", HttpResponse(buffer.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    # views: compute (a new draft) and download one payout
    def get_urls(self):
        return [
            path("compute/", self.admin_site.admin_view(self.compute_view), name="incentives_payout_compute"),
            path("<int:object_id>/download/<str:kind>/", self.admin_site.admin_view(self.download_view), name="incentives_payout_download"),
            *super().get_urls(),
        ]

    def download_view(self, request, object_id, kind):
        if kind not in ("csv", "xlsx") or not self.has_view_permission(request):
            raise PermissionDenied
        payout = get_object_or_404(Payout.objects.select_related("region"), pk=object_id)
        return self._download([payout], kind)

    def compute_view(self, request):
        if not self.has_compute_permission(request):
            raise PermissionDenied
        form = ComputeForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                payout = payouts_compute(region=form.cleaned_data["region"], year=form.cleaned_data["year"], user=request.user)
            except (PermissionDenied, ValidationError) as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
            else:
                self.message_user(
                    request, _("%(payout)s：%(n)s 条明细，合计 %(total)s 元；须由另一人审核通过。") % {
                        "payout": payout, "n": f"{payout.lines.count():,}", "total": money(payout.total),
                    }, messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:incentives_payout_change", args=[payout.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("计算财政激励"),
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/incentives/payout/compute.html", context)

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["can_compute"] = self.has_compute_permission(request)
        return super().changelist_view(request, extra_context)


# --- input records (review queues) ------------------------------------------------------------

class InputAdmin(ReviewAdmin):
    """Records hospitals report; only approved ones count in a payout."""

    list_filter = ("status", "institution__region", ("institution", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("institution",)
    search_fields = ("patient_id",)
    search_help_text = _("患者")
    autocomplete_fields = ("institution",)

    @admin.display(description="institution", ordering="institution__code")
    def institution_code(self, obj):
        return obj.institution.code


@admin.register(ChronicEnrollment)
class ChronicEnrollmentAdmin(InputAdmin):
    list_display = ("institution_code", "patient_id", "disease", "enrolled_on", "status_badge", "decided_by")
    list_filter = (*InputAdmin.list_filter, "disease")
    date_hierarchy = "enrolled_on"


@admin.register(TcmWorkload)
class TcmWorkloadAdmin(InputAdmin):
    list_display = ("institution_code", "month_col", "prescriptions", "status_badge", "decided_by")
    date_hierarchy = "month"
    search_fields = ("institution__code",)
    search_help_text = _("机构")

    @admin.display(description="month", ordering="month")
    def month_col(self, obj):
        return obj.month.strftime("%Y-%m")


@admin.register(HospiceService)
class HospiceServiceAdmin(InputAdmin):
    list_display = ("institution_code", "kind", "patient_id", "service_date", "quantity", "status_badge", "decided_by")
    list_filter = (*InputAdmin.list_filter, "kind")
    date_hierarchy = "service_date"


@admin.register(Screening)
class ScreeningAdmin(InputAdmin):
    list_display = ("institution_code", "patient_id", "screening_date", "fee_col", "high_risk", "status_badge", "decided_by")
    list_filter = (*InputAdmin.list_filter, "high_risk")
    date_hierarchy = "screening_date"

    @admin.display(description="fee", ordering="fee")
    def fee_col(self, obj):
        return num_cell(money(obj.fee))


# --- the cockpit: payouts awaiting approval or payment, above the pools (settlement.admin draws the rest)
_index_below = admin.site.index


def _cockpit_with_payouts(request, extra_context=None):
    payouts = []
    if request.user.has_perm("incentives.view_payout"):
        pending = Payout.objects.filter(status__in=(PayoutStatus.DRAFT, PayoutStatus.APPROVED)).select_related("region", "computed_by")
        for payout in pending.order_by("-year", "pk")[:10]:
            payouts.append({
                "label": f"{payout} · " + str(_("待审核通过") if payout.status == PayoutStatus.DRAFT else _("待支付")),
                "total": money(payout.total), "by": payout.computed_by,
                "url": reverse("admin:incentives_payout_change", args=[payout.pk]),
            })
    return _index_below(request, {"cockpit_payouts": payouts, **(extra_context or {})})


admin.site.index = _cockpit_with_payouts
