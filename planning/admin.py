"""Bureau workspace for planning: rate-setting report and adoption (maker-checker), scenarios with
the side-by-side comparison, and the forecast panel on settlement's pool page."""
from __future__ import annotations

import json
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from drg.choices import Fund
from drg.models import Region
from planning import selectors, services
from planning.choices import ScenarioStatus
from planning.domain.rate_setting import RateSettingError, parse_weights, parse_years
from planning.models import Forecast, RateSetting, Scenario
from settlement.admin_views import Series, register_pool_panel, svg_chart

SORTS = {
    "change": (_lazy("变化幅度（大者在前）"), lambda r: (-(abs(Decimal(r[7])) if r[7] else Decimal(-1)), r[0])),
    "code": (_lazy("病组编码"), lambda r: r[0]),
    "cases": (_lazy("病例数（多者在前）"), lambda r: (-int(r[2]), r[0])),
    "status": (_lazy("状态"), lambda r: (r[8], r[0])),
}
REPORT_HEADERS = (_lazy("病组"), _lazy("类型"), _lazy("入选病例"), _lazy("剔除"), _lazy("次均费用"), _lazy("新基准点数"),
                  _lazy("原基准点数"), _lazy("变化"), _lazy("状态"))


def sorted_report(rows: list[list[str]], sort: str) -> list[list[str]]:
    return sorted(rows, key=SORTS.get(sort, SORTS["change"])[1])


def points_chart(rows: list[list[str]], *, limit: int = 30) -> str:
    """Old vs new base points of the `limit` groups with the largest changes (set groups only)."""
    changed = [r for r in sorted_report(rows, "change") if r[8] == "set" and r[6]][:limit]
    return svg_chart(
        title=_("原基准点数与新基准点数（变化最大的 %(n)s 个病组）") % {"n": len(changed)}, x_labels=[r[0] for r in changed],
        series=[Series(_("原"), [Decimal(r[6]) for r in changed], "#9aa5b1", kind="bar"),
                Series(_("新"), [Decimal(r[5]) for r in changed], "#1f4e79", kind="bar")],
        width=max(760, 34 * len(changed) + 100), value_decimals=1,
    )


class RateSettingForm(forms.Form):
    region = forms.ModelChoiceField(Region.objects.order_by("code"), label=_lazy("统筹区"))
    year = forms.IntegerField(label=_lazy("目标年度"), min_value=1900, max_value=9999)
    reference = forms.CharField(label=_lazy("参考年度（旧→新，逗号分隔）"), required=False, max_length=60,
                                help_text=_lazy("默认：目标年度前三年"))
    weights = forms.CharField(label=_lazy("权重（逗号分隔）"), required=False, max_length=60, help_text=_lazy("默认 2,3,5"))
    sort = forms.ChoiceField(label=_lazy("排序"), choices=[(k, v[0]) for k, v in SORTS.items()], required=False)

    def clean(self):
        data = super().clean()
        try:
            data["reference_years"] = parse_years(data["reference"]) if data.get("reference") else None
            data["weight_values"] = parse_weights(data["weights"]) if data.get("weights") else None
        except RateSettingError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


@admin.register(RateSetting)
class RateSettingAdmin(admin.ModelAdmin):
    list_display = ("id", "region", "year", "reference_years", "weights", "all_case_avg_cost", "created_by", "created_at", "revisions")
    list_filter = ("year", "region")
    change_form_template = "admin/planning/ratesetting/change_form.html"
    change_list_template = "admin/planning/ratesetting/change_list.html"
    readonly_fields = ("region", "year", "reference_years", "weights", "all_case_avg_cost", "summary", "reason",
                       "created_by", "created_at", "revisions")
    fields = readonly_fields

    @admin.display(description=_lazy("起草的参数修订（待另一人审核）"))
    def revisions(self, obj):
        from drg.models import ParameterRevision

        ids = [pk for pk in (obj.applied or {}).values() if isinstance(pk, int)]
        return format_html_join(" · ", '<a href="{}">{} r{} · {}</a>', (
            (reverse("admin:drg_parameterrevision_change", args=[rev.pk]), rev.get_kind_display(), rev.revision, rev.get_status_display())
            for rev in ParameterRevision.objects.filter(pk__in=ids).order_by("kind")
        )) or "—"

    def has_add_permission(self, request):
        return False  # drafted from the computed report ("采纳为草稿")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the record of what was adopted; its revisions are decided in drg's revision screens

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [path("compute/", wrap(self.compute_view), name="planning_ratesetting_compute")] + super().get_urls()

    def compute_view(self, request):
        """Choose references and weights, see the report (largest changes first) and a chart; adopt as a draft."""
        if not request.user.has_perm("planning.view_ratesetting"):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else (request.GET if "region" in request.GET else None)
        form = RateSettingForm(data)
        context = {**self.admin_site.each_context(request), "title": _("基准点数测算"), "opts": self.model._meta, "form": form,
                   "headers": REPORT_HEADERS, "can_adopt": request.user.has_perm("planning.add_ratesetting")}
        if data is not None and form.is_valid():
            cd = form.cleaned_data
            try:
                result = services.rate_setting_compute(region=cd["region"], year=cd["year"], reference_years=cd["reference_years"],
                                                       weights=cd["weight_values"])
            except (RateSettingError, ValidationError) as exc:
                form.add_error(None, str(exc))
                return TemplateResponse(request, "admin/planning/ratesetting/compute.html", context)
            if request.method == "POST" and "adopt" in request.POST:
                if not context["can_adopt"]:
                    raise PermissionDenied
                try:
                    proposal = services.rate_setting_adopt(region=cd["region"], year=cd["year"], result=result, user=request.user,
                                                           reason=request.POST.get("reason", ""))
                except ValidationError as exc:
                    self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)
                    return HttpResponseRedirect(request.path + "?" + request.POST.urlencode())
                self.message_user(request, _("已起草 %(year)s 年病组目录与支付方案的参数修订（测算 #%(pk)s），待另一位审核人批准") % {"year": cd["year"], "pk": proposal.pk})
                return HttpResponseRedirect(reverse("admin:planning_ratesetting_change", args=[proposal.pk]))
            from planning.domain.rate_setting import report_rows

            rows = report_rows(result.report)[1:]
            context.update(summary=result.summary(), rows=sorted_report(rows, cd.get("sort") or "change"), chart=points_chart(rows),
                           query=request.GET.urlencode() if request.method == "GET" else "")
        return TemplateResponse(request, "admin/planning/ratesetting/compute.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None:
            rows = obj.report[1:]
            sort = request.GET.get("sort", "change")
            extra.update(rows=sorted_report(rows, sort), headers=REPORT_HEADERS, chart=points_chart(rows), sorts=[(k, v[0]) for k, v in SORTS.items()])
        return super().change_view(request, object_id, form_url, extra_context=extra)


class ScenarioForm(forms.ModelForm):
    growth_rate = forms.DecimalField(label=_lazy("增长率"), required=False, max_digits=9, decimal_places=6)
    reserve_rate = forms.DecimalField(label=_lazy("调剂金比例"), required=False, max_digits=9, decimal_places=6)
    all_case_avg_cost = forms.DecimalField(label=_lazy("全部病例次均费用 A"), required=False, max_digits=16, decimal_places=2)
    prepay_ratio = forms.DecimalField(label=_lazy("预付比例"), required=False, max_digits=9, decimal_places=6)
    rate_setting = forms.ModelChoiceField(RateSetting.objects.all(), label=_lazy("采用测算结果作为目录"), required=False)
    changes_json = forms.CharField(label=_lazy("其他变更（JSON）"), required=False, widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
                                   help_text=_lazy('例如 {"scheme": {"readmission_days": 30}, "coefficients": {"institutions": {"H1": "1.05"}}}'))

    class Meta:
        model = Scenario
        fields = ("region", "fund", "year", "month", "name")

    def clean(self):
        data = super().clean()
        text = data.get("changes_json") or "{}"
        if "\x00" in text or len(text) > 1_000_000:
            raise forms.ValidationError(_("变更内容无效"))
        try:
            changes = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(_("JSON 无效：%(msg)s") % {"msg": exc.msg}) from exc
        if not isinstance(changes, dict):
            raise forms.ValidationError(_("变更内容应为 JSON 对象"))
        for key, section in (("growth_rate", "budget"), ("reserve_rate", "budget"), ("all_case_avg_cost", "scheme"), ("prepay_ratio", "scheme")):
            if data.get(key) is not None:
                changes.setdefault(section, {})[key] = str(data[key])
        if data.get("rate_setting"):
            changes.setdefault("catalog", {})["rate_setting"] = data["rate_setting"].pk
        if data.get("region") and data.get("fund") and data.get("year"):
            try:
                data["changes"] = services.scenario_changes_validate(region=data["region"], fund=data["fund"], year=data["year"], changes=changes)
            except ValidationError as exc:
                raise forms.ValidationError(exc.messages) from exc
        return data


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    form = ScenarioForm
    list_display = ("id", "name", "region", "fund", "year", "month", "status", "point_value", "same_inputs_as_base", "created_by", "created_at")
    list_filter = ("status", "fund", "year", "region")
    change_form_template = "admin/planning/scenario/change_form.html"

    @admin.display(description=_lazy("点值"))
    def point_value(self, obj):
        return (obj.totals or {}).get("point_value", "—")

    def has_change_permission(self, request, obj=None):
        return obj is None and request.user.has_perm("planning.add_scenario")

    def has_delete_permission(self, request, obj=None):
        return False  # a recorded scenario stays (who, when, what changed)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("region", "fund", "year", "month", "name", "growth_rate", "reserve_rate", "all_case_avg_cost", "prepay_ratio",
                    "rate_setting", "changes_json")
        return ("name", "region", "fund", "year", "month", "base_run", "changes", "status", "fingerprint", "same_inputs_as_base",
                "created_by", "created_at", "finished_at", "error")

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj is not None else ()

    def save_model(self, request, obj, form, change):
        cd = form.cleaned_data
        created = services.scenario_create(region=cd["region"], fund=cd["fund"], year=cd["year"], month=cd.get("month"), name=cd["name"],
                                           changes=cd.get("changes", {}), user=request.user, run_async=True)
        obj.pk = created.pk
        obj._state.adding = False

    def get_form(self, request, obj=None, **kwargs):
        if obj is not None:
            kwargs["form"] = forms.ModelForm
        return super().get_form(request, obj, **kwargs)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [path("<int:object_id>/adopt/", wrap(self.adopt_view), name="planning_scenario_adopt")] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None:
            others = [s for s in selectors.scenarios_of_pool(region=obj.region, fund=obj.fund, year=obj.year, month=obj.month) if s.pk != obj.pk]
            chosen_ids = {int(x) for x in request.GET.getlist("with") if x.isascii() and x.isdigit()}
            chosen = [obj] + [s for s in others if s.pk in chosen_ids]
            comparison = selectors.scenario_comparison(scenarios=chosen) if obj.status == ScenarioStatus.DONE else {"columns": [], "rows": []}
            extra.update(comparison=comparison, others=others, chosen_ids=chosen_ids, chart=_comparison_chart(comparison),
                         can_adopt=obj.status == ScenarioStatus.DONE and request.user.has_perm("budget.add_budget"),
                         fields=selectors.COMPARE_FIELDS)
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def adopt_view(self, request, object_id):
        scenario = get_object_or_404(Scenario, pk=object_id)
        if request.method != "POST" or not request.user.has_perm("budget.add_budget"):
            raise PermissionDenied
        try:
            drafted = services.scenario_adopt(scenario=scenario, user=request.user, reason=request.POST.get("reason", ""))
            self.message_user(request, _("已起草：%(what)s；请由另一位审核人批准") % {"what": ", ".join(f"{k} #{v}" for k, v in drafted.items())})
        except (ValidationError, PermissionDenied) as exc:
            self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)
        return HttpResponseRedirect(reverse("admin:planning_scenario_change", args=[scenario.pk]))


def _comparison_chart(comparison: dict) -> str:
    if not comparison["rows"]:
        return ""
    colours = ["#9aa5b1", "#1f4e79", "#e67e22", "#27ae60", "#8e44ad", "#c0392b"]
    series = []
    for i, column in enumerate(comparison["columns"]):
        values = [(row["values"][i] or {}).get("fund_payment") for row in comparison["rows"]]
        series.append(Series(str(column["label"]), values, colours[i % len(colours)], kind="bar"))
    return svg_chart(title=_("各机构基金支付：生效运行与模拟"), x_labels=[row["institution"] for row in comparison["rows"]], series=series,
                     width=max(760, 60 * len(comparison["rows"]) + 100))


@register_pool_panel
def forecast_panel(request, region, fund: str, year: int):
    """The forecast path (estimate) with V_m and the track-record band, and the pool's scenarios."""
    if not request.user.has_perm("planning.view_forecast"):
        return None
    forecasts = {f.month: f for f in selectors.forecasts_of_pool(region_id=region.pk, fund=fund, year=year)}
    months = list(range(1, 12))
    estimate = [forecasts[m].point_value if m in forecasts else None for m in months]
    low = [forecasts[m].point_value * (1 - forecasts[m].band) if m in forecasts and forecasts[m].band is not None else None for m in months]
    high = [forecasts[m].point_value * (1 + forecasts[m].band) if m in forecasts and forecasts[m].band is not None else None for m in months]
    chart = svg_chart(
        title=_("年末点值预测（估算）"), x_labels=[f"{m}月" for m in months], value_decimals=2, y_from_zero=False,
        series=[Series(_("月度点值 V_m"), [forecasts[m].run_point_value if m in forecasts else None for m in months], "#9aa5b1"),
                Series(_("预测年末点值 V̂"), estimate, "#1f4e79", show_values=True),
                Series(_("历史误差带下限"), low, "#e67e22", kind="dashed"), Series(_("历史误差带上限"), high, "#e67e22", kind="dashed")],
    ) if forecasts else ""
    scenarios = Scenario.objects.filter(region=region, fund=fund, year=year).order_by("-created_at")[:10]
    rows = [(f, None if f.band is None else f"±{f.band * 100:.2f}%") for f in (forecasts[m] for m in sorted(forecasts))]
    return render_to_string("admin/planning/pool_panel.html", {
        "chart": chart, "rows": rows, "scenarios": scenarios,
        "new_scenario_url": reverse("admin:planning_scenario_add") + f"?region={region.pk}&fund={fund}&year={year}",
        "can_add": request.user.has_perm("planning.add_scenario"),
    }, request=request)


@admin.register(Forecast)
class ForecastAdmin(admin.ModelAdmin):
    list_display = ("region", "fund", "year", "month", "run_point_value", "point_value", "band", "season_source", "created_at")
    list_filter = ("fund", "year", "region")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
