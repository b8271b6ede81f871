"""区域总额预算 in the admin: draft with the computed lines shown live, approve (maker-checker), revise.

Writes go through budget.services; the live lines come from budget.domain.lines through a small JSON
view, so the browser shows exactly what the server will store.
"""
from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from dataclasses import asdict
from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from budget.choices import BudgetStatus
from budget.domain.lines import BudgetInputs, BudgetRuleError, budget_lines
from budget.models import Budget
from budget.services import (
    INPUT_FIELDS,
    budget_approve,
    budget_compute_lines,
    budget_draft,
    budget_inputs_of,
    budget_rule_message,
    budget_send_back,
    budget_update_draft,
)
from common.reviews import error_text
from drg.admin import HistoryAdmin, money, num_cell, status_badge
from drg.models import Region

LINE_FIELDS = ("total", "reserve", "outpatient", "inpatient", "primary_care_earmark")
LINE_LABELS = {
    "total": _("总额"),
    "reserve": _("调剂金"),
    "outpatient": _("门诊"),
    "inpatient": _("住院"),
    "primary_care_earmark": _("基层倾斜"),
}


def pool_url(budget: Budget) -> str:
    return reverse("admin:settlement_pool", args=[budget.region_id, budget.fund, budget.year])


RATE_FIELDS = ("growth_rate", "growth_cap", "reserve_rate", "outpatient_share", "primary_care_share")


class PercentInput(forms.NumberInput):
    """Shows a stored fraction (0.05) as a percentage (5) with a % sign after the box."""

    def format_value(self, value):
        if value in (None, ""):
            return None
        try:
            return format(Decimal(str(value)) * 100, "f").rstrip("0").rstrip(".") or "0"
        except (InvalidOperation, ValueError):
            return value  # what the officer typed, redisplayed with its error


class PercentField(forms.DecimalField):
    """A rate typed as a percentage: 5 or 5.5 (%), stored as the fraction 0.05 / 0.055."""

    widget = PercentInput

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", 9)
        kwargs.setdefault("decimal_places", 4)
        super().__init__(*args, **kwargs)
        self.widget.attrs.update({"step": "0.0001", "style": "width:7em"})

    def to_python(self, value):
        percent = super().to_python(value)
        return None if percent is None else percent / 100


class BudgetForm(forms.ModelForm):
    """Inputs only; the lines are computed. A growth rate above the cap is refused, never clipped.
    Rates are typed as percentages (5 for 5%)."""

    class Meta:
        model = Budget
        fields = ("region", "fund", "year", "reason", *INPUT_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in RATE_FIELDS:
            if name in self.fields:
                old = self.fields[name]
                self.fields[name] = PercentField(
                    label=old.label, required=old.required, initial=old.initial,
                    help_text=_("以百分数填写，如 5 表示 5%"),
                )

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        probe = Budget(**{name: data.get(name, getattr(self.instance, name)) for name in INPUT_FIELDS})
        try:
            budget_compute_lines(budget=probe)
        except ValidationError as exc:
            self.add_error(None, exc)
            return data
        if self.instance.pk is None:
            region, fund, year = data.get("region"), data.get("fund"), data.get("year")
            if region and fund and year:
                pool = Budget.objects.filter(region=region, fund=fund, year=year)
                if pool.filter(status=BudgetStatus.DRAFT).exists():
                    raise ValidationError(_("此基金池已有预算草稿：请修改或批准该草稿"))
                if pool.exists() and not (data.get("reason") or "").strip():
                    self.add_error("reason", _("已批准预算的修订须填写理由（重大政策调整）"))
        return data

    def _post_clean(self):
        # When the budget rules refused the inputs, the model's check constraints would only repeat
        # the same refusal in less clear words.
        if self._errors:
            return
        super()._post_clean()


class SendBackForm(forms.Form):
    reason = forms.CharField(
        label=_("退回理由"), widget=forms.Textarea(attrs={"rows": 3, "cols": 70}), max_length=2000,
        help_text=_("经办人在预算草稿页面上看到此理由"),
    )


class RevisionForm(forms.Form):
    reason = forms.CharField(
        label=_("修订理由（重大政策调整）"), widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
        help_text=_("为何修订已批准的预算；新修订以相同的输入作为草稿开始"),
    )


@admin.register(Budget)
class BudgetAdmin(HistoryAdmin):
    form = BudgetForm
    change_form_template = "admin/budget/budget/change_form.html"
    list_display = (
        "pool", "revision", "status_col", "total_col", "reserve_col", "outpatient_col", "inpatient_col",
        "earmark_col", "growth_rate", "drafted_by", "approved_by", "approved_at", "pool_link",
    )
    list_filter = ("region", "fund", "year", "status")
    search_fields = ("region__code", "region__name", "reason")
    list_select_related = ("region", "drafted_by", "approved_by")
    actions = ["approve_selected", "new_revision", "open_next_year"]
    fieldsets = (
        (_("基金池"), {"fields": ("region", "fund", "year", "revision", "reason")}),
        (_("输入"), {"fields": INPUT_FIELDS}),
        (_("审批"), {"fields": ("status", "drafted_by", "created_at", "approved_by", "approved_at", "returned_reason", "returned_by", "returned_at")}),
    )

    # --- columns
    @admin.display(description=_("基金池"), ordering="region__code")
    def pool(self, obj):
        return f"{obj.region.name} · {obj.get_fund_display()} · {obj.year}"

    @admin.display(description=_("状态"), ordering="status")
    def status_col(self, obj):
        return status_badge(obj)

    @admin.display(description=_("总额"), ordering="total")
    def total_col(self, obj):
        return num_cell(money(obj.total))

    @admin.display(description=_("调剂金"))
    def reserve_col(self, obj):
        return num_cell(money(obj.reserve))

    @admin.display(description=_("门诊"))
    def outpatient_col(self, obj):
        return num_cell(money(obj.outpatient))

    @admin.display(description=_("住院"))
    def inpatient_col(self, obj):
        return num_cell(money(obj.inpatient))

    @admin.display(description=_("基层"))
    def earmark_col(self, obj):
        return num_cell(money(obj.primary_care_earmark))

    @admin.display(description="")
    def pool_link(self, obj):
        return format_html('<a href="{}">{}</a>', pool_url(obj), _("基金池页面"))

    # --- permissions: an approved revision is immutable
    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status != BudgetStatus.DRAFT:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.status != BudgetStatus.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def has_approve_permission(self, request):
        return request.user.has_perm("budget.approve_budget")

    def has_revise_permission(self, request):
        return request.user.has_perm("budget.add_budget")

    def get_readonly_fields(self, request, obj=None):
        always = ("revision", *LINE_FIELDS, "status", "drafted_by", "created_at", "approved_by", "approved_at", "returned_reason", "returned_by", "returned_at")
        if obj is None:
            return always
        return ("region", "fund", "year", "reason", *always)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return tuple((name, opts) for name, opts in self.fieldsets if name != _("审批"))
        return self.fieldsets

    # --- writes go through the services
    def save_model(self, request, obj, form, change):
        inputs = BudgetInputs(**{name: form.cleaned_data[name] for name in INPUT_FIELDS})
        if change:
            saved = budget_update_draft(budget=obj, inputs=inputs)
        else:
            saved = budget_draft(
                region=form.cleaned_data["region"], fund=form.cleaned_data["fund"], year=form.cleaned_data["year"],
                inputs=inputs, user=request.user, reason=form.cleaned_data.get("reason") or "",
            )
        obj.__dict__.update(saved.__dict__)

    # --- approve
    @admin.action(description=_("批准所选预算"), permissions=["approve"])
    def approve_selected(self, request, queryset):
        """Bulk approval asks first: each draft's lines, inputs and drafter."""
        budgets = list(queryset.select_related("region", "drafted_by"))
        if request.POST.get("confirmed") == "yes":
            for budget in budgets:
                self._approve(request, budget)
            return None
        return self._approve_confirm(request, budgets, bulk=True)

    def _approve_confirm(self, request, budgets, *, bulk: bool):
        context = {
            **self.admin_site.each_context(request),
            "title": _("确认批准预算"),
            "opts": Budget._meta,
            "budgets": [
                {
                    "budget": b, "mine": b.drafted_by_id == request.user.pk, "draft": b.status == BudgetStatus.DRAFT,
                    "lines": [(LINE_LABELS[name], money(getattr(b, name))) for name in LINE_FIELDS],
                    "inputs": [
                        (Budget._meta.get_field(name).verbose_name,
                         f"{getattr(b, name) * 100:.2f}%" if name in RATE_FIELDS else money(getattr(b, name)))
                        for name in INPUT_FIELDS
                    ],
                    "url": reverse("admin:budget_budget_change", args=[b.pk]),
                }
                for b in budgets
            ],
            "bulk": bulk,
            "selected": [b.pk for b in budgets],
            "action_url": "" if bulk else reverse("admin:budget_budget_approve", args=[budgets[0].pk]),
            "cancel_url": reverse("admin:budget_budget_changelist") if bulk else reverse("admin:budget_budget_change", args=[budgets[0].pk]),
        }
        return TemplateResponse(request, "admin/budget/budget/approve_confirm.html", context)

    def _approve(self, request, budget: Budget) -> bool:
        try:
            budget_approve(budget=budget, user=request.user)
        except PermissionDenied as exc:
            self.message_user(
                request,
                _("%(budget)s：经办与审核须为不同人员，须由另一位审核人批准。") % {"budget": budget},
                messages.ERROR,
            )
        except ValidationError as exc:
            self.message_user(request, f"{budget}: {error_text(exc)}", messages.ERROR)
        else:
            budget = Budget.objects.get(pk=budget.pk)
            self.log_change(request, budget, str(_("批准")))  # the cockpit's recent actions
            self.message_user(request, _("已批准：%(budget)s。") % {"budget": budget}, messages.SUCCESS)
            return True
        return False

    def approve_view(self, request, object_id):
        """GET: what approving will fix (lines, inputs, drafter); POST with the confirmation: approve."""
        if not self.has_approve_permission(request):
            raise PermissionDenied
        budget = get_object_or_404(Budget.objects.select_related("region", "drafted_by"), pk=object_id)
        if request.method != "POST" or request.POST.get("confirmed") != "yes":
            return self._approve_confirm(request, [budget], bulk=False)
        self._approve(request, budget)
        return HttpResponseRedirect(reverse("admin:budget_budget_change", args=[budget.pk]))

    def send_back_view(self, request, object_id):
        """An approver returns a draft to its maker with a reason; it stays a draft."""
        if not self.has_approve_permission(request):
            raise PermissionDenied
        budget = get_object_or_404(Budget.objects.select_related("region", "drafted_by"), pk=object_id)
        form = SendBackForm(request.POST if request.method == "POST" else None)
        change_url = reverse("admin:budget_budget_change", args=[budget.pk])
        if form.is_bound and form.is_valid():
            try:
                budget_send_back(budget=budget, user=request.user, reason=form.cleaned_data["reason"])
            except (PermissionDenied, ValidationError) as exc:
                self.message_user(request, error_text(exc) if isinstance(exc, ValidationError) else str(exc), messages.ERROR)
            else:
                self.log_change(request, budget, str(_("退回：%(reason)s") % {"reason": form.cleaned_data["reason"][:150]}))
                self.message_user(request, _("已将 %(budget)s 退回给经办人 %(who)s。") % {"budget": budget, "who": budget.drafted_by or "—"}, messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": _("退回预算草稿"),
            "opts": Budget._meta,
            "original": budget,
            "form": form,
            "cancel_url": change_url,
        }
        return TemplateResponse(request, "admin/budget/budget/send_back.html", context)

    # --- open the next year
    def has_open_year_permission(self, request):
        return request.user.has_perm("budget.add_budget") and request.user.has_perm("drg.add_parameterrevision")

    @admin.action(description=_("开启下一年度（起草方案、目录与预算，待审核）"), permissions=["open_year"])
    def open_next_year(self, request, queryset):
        """For each region-year of the selected budgets, open the year after (budget.services.year_open)."""
        from budget.services import year_open

        for region_id, year in sorted(set(queryset.values_list("region_id", "year"))):
            region = Region.objects.get(pk=region_id)
            try:
                opened = year_open(region=region, year=year + 1, user=request.user)
            except ValidationError as exc:
                self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            else:
                self.message_user(request, _("已开启 %(region)s %(year)s 年：%(revs)s 项参数修订草稿、%(budgets)s 份预算草稿，待另一位审核人批准") % {
                    "region": region.code, "year": year + 1, "revs": len(opened.revisions), "budgets": len(opened.budgets)},
                    messages.SUCCESS)

    # --- revise
    @admin.action(description=_("为所选已批准预算起草新修订（重大政策调整）"), permissions=["revise"])
    def new_revision(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, _("请只选择一个已批准预算进行修订"), messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:budget_budget_revise", args=[queryset.get().pk]))

    def revise_view(self, request, object_id):
        if not self.has_revise_permission(request):
            raise PermissionDenied
        base = get_object_or_404(Budget.objects.select_related("region"), pk=object_id)
        form = RevisionForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                draft = budget_draft(
                    region=base.region, fund=base.fund, year=base.year, inputs=budget_inputs_of(base),
                    user=request.user, reason=form.cleaned_data["reason"],
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                self.message_user(request, _("已起草第 %(revision)s 版修订：请在下方修改输入，并由另一人批准。") % {"revision": draft.revision}, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:budget_budget_change", args=[draft.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("修订 %(budget)s") % {"budget": base},
            "opts": Budget._meta,
            "original": base,
            "form": form,
        }
        return TemplateResponse(request, "admin/budget/budget/revise.html", context)

    # --- live lines
    def lines_view(self, request):
        """GET inputs -> the computed lines as JSON (budget.domain.lines), or the field errors."""
        if not (self.has_view_permission(request) or self.has_add_permission(request)):
            raise PermissionDenied
        defaults = {f.name: f.default for f in Budget._meta.fields if f.name in INPUT_FIELDS and f.has_default()}
        values = {}
        errors = {}
        for name in INPUT_FIELDS:
            raw = (request.GET.get(name) or "").strip()
            if raw == "":
                if name in defaults:
                    values[name] = Decimal(str(defaults[name]))
                    continue
                errors[name] = str(_("必填"))
                continue
            try:
                values[name] = Decimal(raw) / 100 if name in RATE_FIELDS else Decimal(raw)  # the form types rates as percentages
            except InvalidOperation:
                errors[name] = str(_("不是数字：%(raw)s") % {"raw": raw[:40]})
                continue
            if not values[name].is_finite():
                errors[name] = str(_("不是数字：%(raw)s") % {"raw": raw[:40]})
        if errors:
            return JsonResponse({"ok": False, "errors": errors})
        try:
            lines = budget_lines(BudgetInputs(**values))
        except BudgetRuleError as exc:
            return JsonResponse({"ok": False, "errors": {exc.field: budget_rule_message(exc)}})
        return JsonResponse({"ok": True, "lines": {k: f"{v:,.2f}" for k, v in asdict(lines).items()}})

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("lines/", wrap(self.lines_view), name="budget_budget_lines"),
            path("<path:object_id>/approve/", wrap(self.approve_view), name="budget_budget_approve"),
            path("<path:object_id>/revise/", wrap(self.revise_view), name="budget_budget_revise"),
            path("<path:object_id>/send-back/", wrap(self.send_back_view), name="budget_budget_send_back"),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context.update(
            lines_url=reverse("admin:budget_budget_lines"),
            line_labels=[(name, LINE_LABELS[name], money(getattr(obj, name)) if obj else "—") for name in LINE_FIELDS],
            input_fields=INPUT_FIELDS,
            input_labels={name: str(Budget._meta.get_field(name).verbose_name) for name in INPUT_FIELDS},
            # live only where the inputs are editable (an approver reading a draft sees the stored lines)
            live=add or (obj is not None and obj.status == BudgetStatus.DRAFT and self.has_change_permission(request, obj)),
        )
        if obj is not None:
            context.update(
                pool_url=pool_url(obj),
                can_approve=obj.status == BudgetStatus.DRAFT and self.has_approve_permission(request),
                approve_url=reverse("admin:budget_budget_approve", args=[obj.pk]),
                send_back_url=reverse("admin:budget_budget_send_back", args=[obj.pk]),
                drafted_by_me=obj.drafted_by_id == request.user.pk,
                can_revise=obj.status == BudgetStatus.APPROVED and self.has_revise_permission(request),
                revise_url=reverse("admin:budget_budget_revise", args=[obj.pk]),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)
