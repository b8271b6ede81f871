"""Bureau admin of the special-outpatient benefits: the claims queue (filters by patient, disease,
institution, month and layer amounts), a patient's year at a glance, the layers by month as SVG
charts with the payers' statements, the catalog (read-only: loaded by bundle), patients (category
changes kept in history and re-settled) and the benefit parameters per region, fund and year
(read-only, loaded by bundle)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib import admin, messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from benefits import selectors
from benefits.choices import Payer
from benefits.exports import statement_csv_text, statement_xlsx_bytes
from benefits.models import BenefitParameters, Patient, SettlementCorrection, SpecialDisease, SpecialOutpatientClaim
from benefits.services import patient_category_set
from drg.admin import HistoryAdmin, ReadOnlyAdmin, ReadOnlyInline, money, num_cell, pretty_json
from drg.models import Region
from settlement.admin_views import Series, svg_chart

ZERO = Decimal("0")
LAYER_COLOURS = {"basic": "#1f6fb2", "critical": "#e67e22", "assistance": "#2e7d32", "patient": "#9e9e9e"}


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


class ServiceYearFilter(admin.SimpleListFilter):
    title = _lazy("就诊年份")
    parameter_name = "year"

    def lookups(self, request, model_admin):
        years = SpecialOutpatientClaim.objects.dates("service_date", "year", order="DESC")
        return [(str(d.year), str(d.year)) for d in years]

    def queryset(self, request, queryset):
        year = _int(self.value())
        return queryset if year is None else queryset.filter(service_date__gte=dt.date(year, 1, 1), service_date__lt=dt.date(year + 1, 1, 1))


class ServiceMonthFilter(admin.SimpleListFilter):
    title = _lazy("就诊月份")
    parameter_name = "month"

    def lookups(self, request, model_admin):
        return [(f"{m:02d}", f"{m:02d}月") for m in range(1, 13)]

    def queryset(self, request, queryset):
        month = _int(self.value())
        return queryset if month is None or not 1 <= month <= 12 else queryset.filter(service_date__month=month)


class DiseaseFilter(admin.SimpleListFilter):
    title = _lazy("病种")
    parameter_name = "disease"

    def lookups(self, request, model_admin):
        seen = {}
        for code, name in SpecialDisease.objects.order_by("code", "-year").values_list("code", "name"):
            seen.setdefault(code, name)
        return [(code, f"{code} {name}") for code, name in seen.items()]

    def queryset(self, request, queryset):
        return queryset if not self.value() else queryset.filter(disease_code=self.value())


class LayerFilter(admin.SimpleListFilter):
    """Layer amounts: which layers a claim reached, and the size of its basic part."""

    title = _lazy("保障层次与金额")
    parameter_name = "layer"
    OPTIONS = {
        "basic_zero": (_lazy("基本医保为 0（限额用尽）"), {"basic": 0}),
        "basic_lt_1000": (_lazy("基本医保 < 1,000"), {"basic__gt": 0, "basic__lt": 1000}),
        "basic_1000_10000": (_lazy("基本医保 1,000–10,000"), {"basic__gte": 1000, "basic__lt": 10000}),
        "basic_ge_10000": (_lazy("基本医保 ≥ 10,000"), {"basic__gte": 10000}),
        "critical": (_lazy("有大病保险"), {"critical__gt": 0}),
        "assistance": (_lazy("有医疗救助"), {"assistance__gt": 0}),
        "unsettled": (_lazy("未结算"), {"settled_at__isnull": True}),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _q) in self.OPTIONS.items()]

    def queryset(self, request, queryset):
        option = self.OPTIONS.get(self.value() or "")
        return queryset if option is None else queryset.filter(**option[1])


class CorrectionInline(ReadOnlyInline):
    model = SettlementCorrection
    fields = ("changed_at", "source", "cause", "before_parts", "after_parts")
    readonly_fields = fields

    @admin.display(description=_lazy("更正前"))
    def before_parts(self, obj):
        return _parts(obj.before)

    @admin.display(description=_lazy("更正后"))
    def after_parts(self, obj):
        return _parts(obj.after)


def _parts(snapshot: dict) -> str:
    return format_html(
        "{} {} · {} {} · {} {} · {} {}", _("基本医保"), snapshot.get("basic"), _("大病保险"), snapshot.get("critical"),
        _("医疗救助"), snapshot.get("assistance"), _("个人负担"), snapshot.get("patient"),
    )


@admin.register(SpecialOutpatientClaim)
class SpecialOutpatientClaimAdmin(ReadOnlyAdmin):
    """The claims queue. Claims are settled by services (counter, bundle, command): view only."""

    list_display = ("claim_no", "institution", "patient_link", "disease_code", "service_date", "total_col", "eligible_col",
                    "basic_col", "critical_col", "assistance_col", "patient_col", "settled_at")
    list_filter = (ServiceYearFilter, ServiceMonthFilter, LayerFilter, DiseaseFilter, "fund", "institution", "region", "source")
    search_fields = ("=patient_id", "claim_no", "institution__code")
    list_select_related = ("institution", "region")
    ordering = ("-service_date", "claim_no")
    inlines = [CorrectionInline]
    fields = ("region", "institution", "claim_no", "fund", "patient_link", "disease_code", "service_date", "total_cost", "eligible_cost",
              "basic", "critical", "assistance", "patient_pay", "explanation_view", "settled_at", "source", "created_at")
    readonly_fields = fields

    @admin.display(description=_lazy("参保人"), ordering="patient_id")
    def patient_link(self, obj):
        url = reverse("admin:benefits_patient_year", args=[obj.region_id, obj.patient_id, obj.service_date.year])
        return format_html('<a href="{}">{}</a>', url, obj.patient_id)

    @admin.display(description=_lazy("计算说明"))
    def explanation_view(self, obj):
        return pretty_json(obj.explanation)

    @admin.display(description=_lazy("总费用"), ordering="total_cost")
    def total_col(self, obj):
        return num_cell(money(obj.total_cost))

    @admin.display(description=_lazy("政策范围内"), ordering="eligible_cost")
    def eligible_col(self, obj):
        return num_cell(money(obj.eligible_cost))

    @admin.display(description=_lazy("基本医保"), ordering="basic")
    def basic_col(self, obj):
        return num_cell(money(obj.basic))

    @admin.display(description=_lazy("大病保险"), ordering="critical")
    def critical_col(self, obj):
        return num_cell(money(obj.critical))

    @admin.display(description=_lazy("医疗救助"), ordering="assistance")
    def assistance_col(self, obj):
        return num_cell(money(obj.assistance))

    @admin.display(description=_lazy("个人负担"), ordering="patient_pay")
    def patient_col(self, obj):
        return num_cell(money(obj.patient_pay))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("patient/<int:region_id>/<str:patient_id>/<int:year>/", view(self.patient_year_view), name="benefits_patient_year"),
            path("layers/<int:region_id>/<int:year>/", view(self.layers_view), name="benefits_layers"),
            path("statement/<int:region_id>/<int:year>/<str:payer>.<str:ext>", view(self.statement_view), name="benefits_statement"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        links = [(f"{r.code} {y}", reverse("admin:benefits_layers", args=[r.pk, y]))
                 for r in selectors.regions_with_claims()
                 for y in sorted({d.year for d in SpecialOutpatientClaim.objects.filter(region=r).dates("service_date", "year")})]
        return super().changelist_view(request, {**(extra_context or {}), "layer_links": links})

    def patient_year_view(self, request, region_id: int, patient_id: str, year: int):
        if not self.has_view_permission(request):
            raise Http404
        region = get_object_or_404(Region, pk=region_id)
        glance = selectors.patient_year(region_id=region.pk, patient_id=patient_id, year=year)
        months = selectors.layers_by_month(region_id=region.pk, year=year, patient_id=patient_id)
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "region": region, "patient_id": patient_id,
            "title": _("参保人年度待遇一览") + f" {patient_id} · {year}", "glance": glance,
            "chart": _layers_chart(months, title=_("各层次按月支付")),
        }
        return TemplateResponse(request, "admin/benefits/patient_year.html", context)

    def layers_view(self, request, region_id: int, year: int):
        if not self.has_view_permission(request):
            raise Http404
        region = get_object_or_404(Region, pk=region_id)
        months = selectors.layers_by_month(region_id=region.pk, year=year)
        statements = [
            (Payer(p).label, p, [(ext, reverse("admin:benefits_statement", args=[region.pk, year, p, ext])) for ext in ("csv", "xlsx")],
             selectors.payer_statement(region_id=region.pk, year=year, payer=p))
            for p in (Payer.BASIC, Payer.CRITICAL, Payer.ASSISTANCE)
        ]
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "region": region, "year": year,
            "title": _("三重保障按月分层") + f" {region.code} · {year}", "months": months,
            "chart": _layers_chart(months, title=_("各层次按月支付")), "statements": statements,
        }
        return TemplateResponse(request, "admin/benefits/layers.html", context)

    def statement_view(self, request, region_id: int, year: int, payer: str, ext: str):
        if not self.has_view_permission(request) or payer not in Payer.values or ext not in ("csv", "xlsx"):
            raise Http404
        region = get_object_or_404(Region, pk=region_id)
        month = _int(request.GET.get("month"))
        if month is not None and not 1 <= month <= 12:
            raise Http404
        name = f"{payer}_{region.code}_{year}{f'-{month:02d}' if month else ''}.{ext}"
        if ext == "csv":
            response = HttpResponse(statement_csv_text(region=region, year=year, payer=payer, month=month), content_type="text/csv; charset=utf-8")
        else:
            response = HttpResponse(statement_xlsx_bytes(region=region, year=year, payer=payer, month=month),
                                    content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


def _layers_chart(months: list[dict], *, title: str):
    labels = [m["month"] for m in months]
    series = [
        Series(name=_("基本医保"), values=[m["basic"] for m in months], colour=LAYER_COLOURS["basic"], kind="bar"),
        Series(name=_("大病保险"), values=[m["critical"] for m in months], colour=LAYER_COLOURS["critical"], kind="bar"),
        Series(name=_("医疗救助"), values=[m["assistance"] for m in months], colour=LAYER_COLOURS["assistance"], kind="bar"),
        Series(name=_("个人负担"), values=[m["patient"] for m in months], colour=LAYER_COLOURS["patient"], kind="line"),
    ]
    return svg_chart(title=title, x_labels=labels, series=series, value_decimals=2)


@admin.register(SettlementCorrection)
class SettlementCorrectionAdmin(ReadOnlyAdmin):
    list_display = ("changed_at", "claim", "source", "cause", "before_parts", "after_parts")
    list_filter = ("source", "claim__institution")
    search_fields = ("claim__claim_no", "=claim__patient_id")
    list_select_related = ("claim", "claim__institution")

    @admin.display(description=_lazy("更正前"))
    def before_parts(self, obj):
        return _parts(obj.before)

    @admin.display(description=_lazy("更正后"))
    def after_parts(self, obj):
        return _parts(obj.after)


@admin.register(SpecialDisease)
class SpecialDiseaseAdmin(HistoryAdmin):
    """The catalog is loaded by bundle (special_diseases.csv) and read here."""

    list_display = ("code", "name", "disease_class", "annual_cap", "year", "region")
    list_filter = ("region", "year", "disease_class")
    search_fields = ("code", "name")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Patient)
class PatientAdmin(HistoryAdmin):
    """A category change changes a family's money: it is kept in history and re-settles the
    patient's claims (corrections recorded)."""

    list_display = ("patient_id", "region", "fund", "category", "year_links")
    list_filter = ("region", "fund", "category")
    search_fields = ("=patient_id",)

    def get_readonly_fields(self, request, obj=None):
        return ("region", "patient_id", "fund") if obj is not None else ()

    @admin.display(description=_lazy("年度一览"))
    def year_links(self, obj):
        years = sorted({d.year for d in SpecialOutpatientClaim.objects.filter(region=obj.region, patient_id=obj.patient_id).dates("service_date", "year")})
        return format_html(" ".join(
            f'<a href="{reverse("admin:benefits_patient_year", args=[obj.region_id, obj.patient_id, y])}">{y}</a>' for y in years
        ) or "—")

    def save_model(self, request, obj, form, change):
        category = obj.category
        if change:
            obj.category = Patient.objects.get(pk=obj.pk).category
        else:
            super().save_model(request, obj, form, change)
        report = patient_category_set(patient=obj, category=category, user=request.user)
        if report.corrected:
            self.message_user(request, _("已重新结算，记录更正 %(n)d 笔。") % {"n": report.corrected}, messages.INFO)


@admin.register(BenefitParameters)
class BenefitParametersAdmin(HistoryAdmin):
    """⚙ per region, fund and year, loaded with a bundle's params.json `benefits` (which re-settles
    the region-year). Read-only here until they are revisioned under maker-checker like the scheme."""

    list_display = ("region", "fund", "year", "ratio_level_1", "ratio_level_2", "ratio_level_3", "deductible", "shared_annual_cap",
                    "critical_deductible", "critical_ratio")
    list_filter = ("region", "fund", "year")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
