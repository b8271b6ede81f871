"""Admin for the parameters in force (SETTLEMENT.md §6, docs/admin.md): the payment scheme, the catalog
(DRG groups, coefficients, TCM equivalents) and institution attributes are read-only here; a change is
drafted as a revision with a reason ("起草修订"), and another person approves it. The screens call
drg.revisions only.
"""
from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from common.reviews import error_text
from drg import revisions
from drg.choices import ParameterKind, RevisionStatus
from drg.domain.scheme import scheme_tiers_validate
from drg.models import ParameterRevision, PaymentScheme, Region

HUNDRED = Decimal(100)


def _plain(value: Decimal) -> Decimal:
    """Without trailing zeros and never in exponent form (50, not 5E+1; 0.4, not 0.400000)."""
    value = value.normalize()
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value


def _pct(value) -> Decimal | None:
    """A stored fraction (0.95) as the percentage the form shows (95)."""
    if value is None or value == "":
        return None
    return _plain(Decimal(str(value)) * HUNDRED)


def _fraction(value: Decimal | None):
    """A percentage entered (95) as the fraction stored (0.95), exactly."""
    return None if value is None else value / HUNDRED


# --- the payment scheme: fields and tier lists as rows -----------------------------------------

PCT_HINT = _("按百分数填写，例如 95 表示 95%（0.95）")


class SchemeRevisionForm(forms.Form):
    region = forms.ModelChoiceField(label=_("统筹区"), queryset=Region.objects.all())
    year = forms.IntegerField(label=_("年度"), min_value=2000, max_value=2100)
    all_case_avg_cost = forms.DecimalField(label=_("全部病例次均费用 A（元）"), max_digits=16, decimal_places=2, min_value=Decimal("0.01"))
    low_outlier_multiple = forms.DecimalField(label=_("低倍率界值（倍）"), max_digits=9, decimal_places=6, min_value=0,
                                              help_text=_("费用比值不高于此倍数的病例按低倍率计算，默认 0.4"))
    readmission_days = forms.IntegerField(label=_("再入院间隔（天）"), min_value=0, max_value=365,
                                          help_text=_("出院后此天数内同病组再入院的，后一病例点数折算，默认 15"))
    readmission_factor = forms.DecimalField(label=_("再入院折算比例（%）"), max_digits=9, decimal_places=4, min_value=0, max_value=100,
                                            help_text=PCT_HINT)
    prepay_ratio = forms.DecimalField(label=_("月度预付比例（%）"), max_digits=9, decimal_places=4, min_value=85, max_value=100,
                                      help_text=_("按百分数填写，85 到 100 之间，例如 95 表示 95%"))
    reason = forms.CharField(label=_("修订理由"), widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
                             help_text=_("为什么修订：审核人据此批准，并记入修订记录"))

    PCT_FIELDS = ("readmission_factor", "prepay_ratio")

    def scheme_values(self) -> dict:
        data = self.cleaned_data
        values = {name: data[name] for name in ("all_case_avg_cost", "low_outlier_multiple", "readmission_days")}
        for name in self.PCT_FIELDS:
            values[name] = _fraction(data[name])
        return values


class TierForm(forms.Form):
    """One tier row. `bound` empty means open (以上); only the last tier may be open."""

    BOUND, SHARE = "upto", "multiple"

    def has_content(self) -> bool:
        return bool(self.cleaned_data) and any(self.cleaned_data.get(n) not in (None, "") for n in ("bound", "share"))


def _tier_form(bound_label, share_label, *, bound_pct: bool, share_pct: bool, bound_help="", share_help=""):
    attrs = {"size": 10}
    return type("Tier", (TierForm,), {
        "bound": forms.DecimalField(label=bound_label, required=False, max_digits=16, decimal_places=4, help_text=bound_help,
                                    widget=forms.NumberInput(attrs=attrs)),
        "share": forms.DecimalField(label=share_label, required=False, max_digits=16, decimal_places=4, help_text=share_help,
                                    widget=forms.NumberInput(attrs=attrs)),
        "bound_pct": bound_pct,
        "share_pct": share_pct,
    })


# key -> (title, help, form, json bound key, json share key)
TIER_LISTS = {
    "high_outlier_tiers": (
        _("高倍率界值"), _("按病组基准点数分档：基准点数不高于“上限”的病组，费用比值达到“倍数”即为高倍率；最后一档上限留空表示以上"),
        _tier_form(_("基准点数上限"), _("倍数"), bound_pct=False, share_pct=False), "upto", "multiple"),
    "surplus_tiers": (
        _("结余留用分档"), _("结余率（占基金支付）上限与医院留用比例，均按百分数填写；最后一档上限留空"),
        _tier_form(_("结余率上限（%）"), _("医院留用比例（%）"), bound_pct=True, share_pct=True), "upto", "hospital_share"),
    "overrun_tiers": (
        _("超支分担分档"), _("超支率上限与基金分担比例，均按百分数填写；最后一档上限留空"),
        _tier_form(_("超支率上限（%）"), _("基金分担比例（%）"), bound_pct=True, share_pct=True), "upto", "fund_share"),
    "tcm_rate_tiers": (
        _("中医费用占比加成"), _("中医费用占比达到下限即按加成比例上浮点数，均按百分数填写；可以没有"),
        _tier_form(_("中医费用占比下限（%）"), _("加成比例（%）"), bound_pct=True, share_pct=True), "min_rate", "uplift"),
}


def tier_formset(key: str, *, data=None, initial=None, extra: int = 1):
    _title, _help, form, _bound, _share = TIER_LISTS[key]
    formset_class = forms.formset_factory(form, extra=extra, can_delete=True)
    return formset_class(data=data, initial=initial, prefix=key)


def tiers_initial(key: str, tiers: list | None) -> list[dict]:
    _title, _help, form, bound_key, share_key = TIER_LISTS[key]
    rows = []
    for tier in tiers or []:
        bound, share = tier.get(bound_key), tier.get(share_key)
        rows.append({
            "bound": _pct(bound) if form.bound_pct else (None if bound is None else _plain(Decimal(str(bound)))),
            "share": _pct(share) if form.share_pct else _plain(Decimal(str(share))),
        })
    return rows


def tiers_from_formset(key: str, formset) -> list[dict]:
    """The formset's rows, in order, without removed and empty ones, in the JSON shape of the scheme."""
    _title, _help, form, bound_key, share_key = TIER_LISTS[key]
    tiers = []
    for row in formset.forms:
        data = getattr(row, "cleaned_data", None) or {}
        if not data or data.get("DELETE") or not row.has_content():
            continue
        bound, share = data.get("bound"), data.get("share")
        if key == "tcm_rate_tiers" and bound is None:
            bound = Decimal(0)
        tiers.append({
            bound_key: None if bound is None else (_fraction(bound) if form.bound_pct else bound),
            share_key: None if share is None else (_fraction(share) if form.share_pct else share),
        })
    return tiers


def scheme_initial(values: dict | None) -> tuple[dict, dict]:
    values = values or {name: PaymentScheme._meta.get_field(name).get_default() for name in revisions.SCHEME_FIELDS
                        if name != "all_case_avg_cost"}
    initial = {
        "all_case_avg_cost": values.get("all_case_avg_cost"),
        "low_outlier_multiple": None if values.get("low_outlier_multiple") is None else _plain(Decimal(str(values["low_outlier_multiple"]))),
        "readmission_days": values.get("readmission_days"),
        "readmission_factor": _pct(values.get("readmission_factor")),
        "prepay_ratio": _pct(values.get("prepay_ratio")),
    }
    return initial, {key: tiers_initial(key, values.get(key)) for key in TIER_LISTS}


# --- one row of the catalog or of institution attributes ----------------------------------------

TABLE_TITLES = {
    "groups": _("病组"), "coefficients": _("差异系数"), "tcm_equivalents": _("中医优势病种等效病组"), "institutions": _("机构属性"),
}
FIELD_LABELS = {
    "code": _("编码"), "name": _("名称"), "kind": _("病组类型"), "base_points": _("基准点数"), "avg_cost": _("次均费用（元）"),
    "daily_points": _("床日点数"), "same_price": _("同病同价（不乘差异系数）"), "readmission_exempt": _("不计再入院"),
    "institution": _("机构编码"), "drg_code": _("病组编码"), "coefficient": _("差异系数"), "equivalent_code": _("等效病组编码"),
    "level": _("医院等级（1–3）"), "category": _("机构类别"), "is_public": _("公立"), "group_code": _("医共体编码"),
}


def row_form_class(table: str, *, existing: bool):
    model, fields, key_fields = revisions.TABLES[revisions.TABLE_KIND[table]][table]
    attrs: dict = {"region": forms.ModelChoiceField(label=_("统筹区"), queryset=Region.objects.all(), disabled=existing)}
    if table != "institutions":
        attrs["year"] = forms.IntegerField(label=_("年度"), min_value=2000, max_value=2100, disabled=existing)
    for name in fields:
        if name == "institution":
            field = forms.CharField(label=FIELD_LABELS[name], max_length=32)
        else:
            field = model._meta.get_field(name).formfield()
            field.label = FIELD_LABELS.get(name, name)
            field.help_text = ""
        if existing and name in key_fields:
            field.disabled = True
        attrs[name] = field
    attrs["remove"] = forms.BooleanField(label=_("删除这条记录"), required=False) if existing and table != "institutions" else None
    attrs["reason"] = forms.CharField(label=_("修订理由"), widget=forms.Textarea(attrs={"rows": 3, "cols": 70}))
    attrs = {k: v for k, v in attrs.items() if v is not None}
    return type(f"{table.title()}RowForm", (forms.Form,), attrs)


# --- the revision screen ---------------------------------------------------------------------------

class RejectForm(forms.Form):
    reason = forms.CharField(label=_("驳回理由"), widget=forms.Textarea(attrs={"rows": 3, "cols": 70}))


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_cell(v) for v in value) or "[]"
    return str(value)


def changes_table(changes) -> str:
    if not changes:
        return format_html("<i>{}</i>", _("与对比的参数相同，没有变化"))
    return format_html(
        "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
        _("表"), _("记录"), _("修订前"), _("修订后"),
        format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td><b>{}</b></td></tr>",
                         ((TABLE_TITLES.get(t, _("支付方案")), key, _cell(before), _cell(after)) for t, key, before, after in changes)),
    )


def snapshot_tables(revision: ParameterRevision) -> str:
    values = revision.values or {}
    if revision.kind == ParameterKind.SCHEME:
        return format_html("<table>{}</table>", format_html_join(
            "", "<tr><th>{}</th><td>{}</td></tr>", ((name, _cell(values.get(name))) for name in revisions.SCHEME_FIELDS)))
    parts = []
    for table, (_model, fields, _key) in revisions.TABLES[revision.kind].items():
        rows = values.get(table) or []
        parts.append(format_html(
            "<h4>{} ({})</h4><table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>",
            TABLE_TITLES[table], len(rows),
            format_html_join("", "<th>{}</th>", ((FIELD_LABELS.get(f, f),) for f in fields)),
            format_html_join("", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((_cell(r.get(f)),) for f in fields)),) for r in rows)),
        ))
    return format_html_join("", "{}", ((p,) for p in parts))


def _link(obj) -> str:
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, str(obj))


class ParameterRevisionAdmin(admin.ModelAdmin):
    """Drafts, approves and rejects revisions; shows what a revision changes and the full snapshot it
    put in force (what the runs that recorded it used)."""

    change_form_template = "admin/drg/parameterrevision/change_form.html"
    list_display = ("id", "region", "kind", "year", "revision", "status_col", "reason", "drafted_by", "decided_by", "decided_at")
    list_filter = ("status", "kind", "region", "year")
    search_fields = ("region__code", "reason")
    list_select_related = ("region", "drafted_by", "decided_by")
    fields = ("region", "kind", "year", "revision", "status_col", "reason", "based_on_link", "drafted_by", "created_at",
              "decided_by", "decided_at", "rejection_reason", "changes", "runs", "snapshot")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_draft_permission(self, request) -> bool:
        return request.user.has_perm("drg.add_parameterrevision")

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm("drg.approve_parameterrevision")

    @admin.display(description=_("状态"), ordering="status")
    def status_col(self, obj):
        colour = {"draft": "#b26a00", "approved": "#2e7d32", "rejected": "#b3261e"}.get(obj.status, "#444")
        return format_html('<span style="color:#fff;background:{};border-radius:3px;padding:1px 6px;white-space:nowrap">{}</span>',
                           colour, obj.get_status_display())

    @admin.display(description=_("基于修订"))
    def based_on_link(self, obj):
        return _link(obj.based_on) if obj.based_on_id else "—"

    @admin.display(description=_("本修订的变化"))
    def changes(self, obj):
        return changes_table(revisions.parameter_revision_changes(revision=obj))

    @admin.display(description=_("使用本修订的清算"))
    def runs(self, obj):
        runs = list(obj.clearing_runs.select_related("region").order_by("-id")[:50])
        return format_html_join(mark_safe("<br>"), "{}", ((_link(run),) for run in runs)) if runs else "—"

    @admin.display(description=_("生效参数全量快照"))
    def snapshot(self, obj):
        return snapshot_tables(obj)

    # --- urls
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("draft/scheme/", wrap(self.draft_scheme_view), name="drg_parameterrevision_draft_scheme"),
            path("draft/<str:table>/", wrap(self.draft_row_view), name="drg_parameterrevision_draft_row"),
            path("<int:object_id>/approve/", wrap(self.approve_view), name="drg_parameterrevision_approve"),
            path("<int:object_id>/reject/", wrap(self.reject_view), name="drg_parameterrevision_reject"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        revision = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if revision is not None and revision.status == RevisionStatus.DRAFT:
            mine = revision.drafted_by_id == request.user.pk
            extra_context.update(
                can_approve=self.has_approve_permission(request) and not mine,
                own_draft=mine,
                approve_url=reverse("admin:drg_parameterrevision_approve", args=[revision.pk]),
                reject_url=reverse("admin:drg_parameterrevision_reject", args=[revision.pk]),
                can_reject=self.has_approve_permission(request) or mine,
                edit_url=(reverse("admin:drg_parameterrevision_draft_scheme") + f"?region={revision.region_id}&year={revision.year}")
                if mine and revision.kind == ParameterKind.SCHEME else None,
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def _change_url(self, revision) -> str:
        return reverse("admin:drg_parameterrevision_change", args=[revision.pk])

    def approve_view(self, request, object_id):
        if request.method != "POST" or not self.has_approve_permission(request):
            raise PermissionDenied
        revision = get_object_or_404(ParameterRevision, pk=object_id)
        try:
            revisions.parameter_revision_approve(revision=revision, user=request.user)
        except PermissionDenied as exc:
            self.message_user(request, str(exc), messages.ERROR)
        except ValidationError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
        else:
            self.message_user(request, _("修订 %(rev)s 已批准并生效") % {"rev": revision}, messages.SUCCESS)
        return HttpResponseRedirect(self._change_url(revision))

    def reject_view(self, request, object_id):
        revision = get_object_or_404(ParameterRevision, pk=object_id)
        if not (self.has_approve_permission(request) or revision.drafted_by_id == request.user.pk):
            raise PermissionDenied
        form = RejectForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                revisions.parameter_revision_reject(revision=revision, user=request.user, reason=form.cleaned_data["reason"])
            except ValidationError as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
            else:
                self.message_user(request, _("修订 %(rev)s 已驳回") % {"rev": revision}, messages.SUCCESS)
            return HttpResponseRedirect(self._change_url(revision))
        return self._render(request, _("驳回修订 %(rev)s") % {"rev": revision}, form=form, change_url=self._change_url(revision))

    def _render(self, request, title, **context):
        return TemplateResponse(request, "admin/drg/parameterrevision/draft.html", {
            **self.admin_site.each_context(request), "title": title, "opts": self.model._meta, **context,
        })

    # --- drafting
    def _region_year(self, request):
        source = request.POST if request.method == "POST" else request.GET
        region = Region.objects.filter(pk=source.get("region")).first() if str(source.get("region", "")).isdigit() else None
        year = int(source["year"]) if str(source.get("year", "")).isdigit() else None
        return region, year

    def draft_scheme_view(self, request):
        """The payment scheme of a region-year as a form: fields, and each tier list as rows that can
        be added and removed; rates as percentages. Starts from the user's own draft, else what is in
        force (else the spec's defaults)."""
        if not self.has_draft_permission(request):
            raise PermissionDenied
        region, year = self._region_year(request)
        pending = values = None
        if region is not None and year is not None:
            pending = revisions.parameter_revision_pending(region=region, kind=ParameterKind.SCHEME, year=year)
            values = pending.values if pending is not None else revisions.parameter_values_in_force(
                region=region, kind=ParameterKind.SCHEME, year=year)
        if pending is not None and pending.drafted_by_id not in (None, request.user.pk):
            self.message_user(request, _("已有他人起草的修订草稿，请先审核或驳回"), messages.WARNING)
            return HttpResponseRedirect(self._change_url(pending))
        initial, tier_initial = scheme_initial(values)
        initial.update(region=region, year=year, reason=pending.reason if pending else "")
        post = request.POST if request.method == "POST" else None
        adding = next((key for key in TIER_LISTS if post is not None and f"_add_{key}" in post), None)
        form = SchemeRevisionForm(post, initial=initial)
        formsets = {}
        for key in TIER_LISTS:
            if adding == key:  # one more empty row; the entries so far kept, nothing validated yet
                data = post.copy()
                data[f"{key}-TOTAL_FORMS"] = str(int(post.get(f"{key}-TOTAL_FORMS", 0)) + 1)
                formsets[key] = tier_formset(key, data=data)
            else:  # posted rows stand on their own (compared with no initial, an unchanged row is still a row)
                formsets[key] = tier_formset(key, data=post, initial=None if post is not None else tier_initial[key])
        if post is not None and adding is None:
            valid = form.is_valid()
            valid = all([fs.is_valid() for fs in formsets.values()]) and valid
            if valid:
                draft = self._save_scheme(request, form, formsets, pending)
                if draft is not None:
                    self.message_user(request, _("修订草稿 %(rev)s 已保存，待另一位审核人批准后生效") % {"rev": draft}, messages.SUCCESS)
                    return HttpResponseRedirect(self._change_url(draft))
        tier_blocks = [
            {"key": key, "title": TIER_LISTS[key][0], "help": TIER_LISTS[key][1], "formset": formsets[key],
             "errors": getattr(formsets[key], "tier_errors", [])}
            for key in TIER_LISTS
        ]
        return self._render(request, _("起草支付方案修订"), form=form, tier_blocks=tier_blocks, scheme=True,
                            quiet=adding is not None, pending=pending)

    def _save_scheme(self, request, form, formsets, pending):
        values = form.scheme_values()
        ok = True
        for key, formset in formsets.items():
            tiers = tiers_from_formset(key, formset)
            checked, problems = scheme_tiers_validate(key, tiers)
            if problems:
                formset.tier_errors = problems
                ok = False
            values[key] = checked
        if not ok:
            return None
        data = form.cleaned_data
        try:
            if pending is not None and pending.region_id == data["region"].pk and pending.year == data["year"]:
                return revisions.parameter_revision_update(revision=pending, values=values, user=request.user, reason=data["reason"])
            return revisions.parameter_revision_draft(region=data["region"], kind=ParameterKind.SCHEME, year=data["year"],
                                                      values=values, reason=data["reason"], user=request.user)
        except (ValidationError, PermissionDenied) as exc:
            form.add_error(None, error_text(exc) if isinstance(exc, ValidationError) else str(exc))
            return None

    def draft_row_view(self, request, table):
        """One row of the catalog or of institution attributes: change it, remove it, or add a new one,
        into a draft revision."""
        if not self.has_draft_permission(request):
            raise PermissionDenied
        if table not in revisions.TABLE_KIND:
            raise PermissionDenied
        model, fields, key_fields = revisions.TABLES[revisions.TABLE_KIND[table]][table]
        source = request.POST if request.method == "POST" else request.GET
        record = model.objects.filter(pk=source.get("pk")).first() if str(source.get("pk", "")).isdigit() else None
        initial: dict = {}
        if record is not None:
            region = record.institution.region if table == "coefficients" else record.region
            initial = {"region": region, "year": getattr(record, "year", None)}
            for name in fields:
                initial[name] = record.institution.code if name == "institution" else getattr(record, name)
        else:
            region, year = self._region_year(request)
            initial = {"region": region, "year": year}
        form = row_form_class(table, existing=record is not None)(request.POST if request.method == "POST" else None, initial=initial)
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            row = None if data.get("remove") else {
                name: str(data[name]) if isinstance(data[name], Decimal) else data[name] for name in fields
            }
            try:
                draft = revisions.parameter_revision_draft_row(
                    region=data["region"], table=table, year=data.get("year"), key={n: data[n] for n in key_fields},
                    row=row, reason=data["reason"], user=request.user,
                )
            except (ValidationError, PermissionDenied) as exc:
                form.add_error(None, error_text(exc) if isinstance(exc, ValidationError) else str(exc))
            else:
                self.message_user(request, _("修订草稿 %(rev)s 已保存，待另一位审核人批准后生效") % {"rev": draft}, messages.SUCCESS)
                return HttpResponseRedirect(self._change_url(draft))
        return self._render(request, _("起草修订：%(table)s") % {"table": TABLE_TITLES[table]}, form=form, record=record)


class RevisedByRevisionAdmin:
    """Mixin of the catalog screens: read-only records, with "draft a revision" (起草修订) on each record
    and on the list (a new record). `revision_table` names the table in drg.revisions.TABLES, or
    "scheme"."""

    revision_table = ""
    change_form_template = "admin/drg/revisable_change_form.html"
    change_list_template = "admin/drg/revisable_change_list.html"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def draft_url(self, request, obj=None) -> str | None:
        if not request.user.has_perm("drg.add_parameterrevision"):
            return None
        if self.revision_table == "scheme":
            url = reverse("admin:drg_parameterrevision_draft_scheme")
            return url + (f"?region={obj.region_id}&year={obj.year}" if obj is not None else "")
        url = reverse("admin:drg_parameterrevision_draft_row", args=[self.revision_table])
        return url + (f"?pk={obj.pk}" if obj is not None else "")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra_context = {**(extra_context or {}), "draft_url": self.draft_url(request, obj),
                         "revisions_url": reverse("admin:drg_parameterrevision_changelist")}
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "draft_url": self.draft_url(request),
                         "revisions_url": reverse("admin:drg_parameterrevision_changelist")}
        return super().changelist_view(request, extra_context)
