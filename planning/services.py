"""Planning services: rate-setting (§1), scenarios (§2), forecasts (§3) of PLANNING.md.

The calculations are the domain's (planning/domain/) and SETTLEMENT.md's own engines: a scenario
values and clears with `drg.domain.valuation.value_cases` and settlement's clearing, unchanged,
over inputs read the way a clearing run reads them and then changed as the scenario says.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from dataclasses import asdict, replace
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from budget.domain.lines import BudgetInputs, BudgetRuleError, budget_lines
from budget.services import budget_current, budget_draft, budget_inputs_of
from common.precision import from_ten_thousandths, r2, r4, round_half_up
from drg.domain.rows import MONEY_INT_DIGITS, RATE_INT_DIGITS, RATE_PLACES
from drg.domain.scheme import _parse_scheme as parse_scheme  # the one reader of a scheme object (params.json rules)
from drg.domain.scheme import _Params as SchemeCheck
from drg.domain.valuation import Catalog, ValuationInputError, value_cases
from drg.choices import ParameterKind
from drg.models import Institution, PaymentScheme, Region
from drg.revisions import parameter_revision_draft, parameter_values_in_force, scheme_values
from planning import dispatch, selectors
from planning.choices import ScenarioStatus
from planning.domain import forecast as forecast_domain
from planning.domain.rate_setting import RateSettingError, RateSettingResult, catalog_rows, rate_setting, report_rows
from planning.models import Forecast, ForecastLine, RateSetting, Scenario, ScenarioLine, Season
from settlement import scaleout
from settlement import selectors as settlement_selectors
from settlement import services as settlement_services
from settlement.choices import RunKind, RunStatus
from settlement.domain.clearing import ClearingError
from settlement.models import ClearingRun

logger = logging.getLogger(__name__)
MAX_NAME = 200


# --- rate-setting (§1) ---------------------------------------------------------------------------

def rate_setting_compute(*, region: Region, year: int, reference_years=None, weights=None) -> RateSettingResult:
    """§1 for target year `year` of the region (default reference years: the three before it)."""
    years = tuple(reference_years) if reference_years else (year - 3, year - 2, year - 1)
    if any(y >= year for y in years):
        raise RateSettingError(f"reference years must be before the target year {year}")
    newest = max(years)
    catalog = selectors.catalog_frame(region_id=region.pk, year=newest)
    if catalog.empty:
        raise RateSettingError(f"region {region.code} has no catalog for the newest reference year {newest}")
    cases = selectors.reference_cases_frame(region_id=region.pk, years=years)
    return rate_setting(cases, catalog, reference_years=years, weights=weights)


def rate_setting_write(*, result: RateSettingResult, out_dir: Path) -> list[Path]:
    """DIR/drg_groups.csv, DIR/scheme.json, DIR/rate_setting.csv (PLANNING.md §1)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in (("drg_groups.csv", catalog_rows(result.catalog)), ("rate_setting.csv", report_rows(result.report))):
        with open(out_dir / name, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(rows)
        written.append(out_dir / name)
    (out_dir / "scheme.json").write_text(json.dumps({"all_case_avg_cost": str(result.all_case_avg_cost)}, ensure_ascii=False) + "\n", encoding="utf-8")
    written.append(out_dir / "scheme.json")
    return written


def _catalog_revision_values(*, region: Region, year: int, source_year: int) -> dict:
    """The full catalog snapshot a revision of year `year` starts from: year's catalog in force, or
    (a year without a catalog yet) the catalog of `source_year`."""
    values = parameter_values_in_force(region=region, kind=ParameterKind.CATALOG, year=year)
    if not (values or {}).get("groups"):
        values = parameter_values_in_force(region=region, kind=ParameterKind.CATALOG, year=source_year) or {}
    return {"groups": list(values.get("groups") or []), "coefficients": list(values.get("coefficients") or []),
            "tcm_equivalents": list(values.get("tcm_equivalents") or [])}


def _scheme_revision_values(*, region: Region, year: int, source_year: int) -> dict:
    scheme = PaymentScheme.objects.filter(region=region, year=year).first() or PaymentScheme.objects.filter(region=region, year=source_year).first()
    if scheme is None:
        raise ValidationError(_("该统筹区没有可作为基础的支付方案"))
    return scheme_values(scheme)


def rate_setting_adopt(*, region: Region, year: int, result: RateSettingResult, user, reason: str = "") -> RateSetting:
    """Adopt the rate-setting as year Y's catalog: the report is recorded and two parameter revisions
    are drafted (drg.revisions) — year Y's catalog with the new base points, average costs and daily
    points, and year Y's payment scheme with the new A — for another person to approve."""
    reason = _clean_text(reason, 2000).strip() or _("基准点数测算（参考年度 %(years)s，权重 %(weights)s）") % {
        "years": ",".join(map(str, result.reference_years)), "weights": ":".join(map(str, result.weights))}
    source_year = max(result.reference_years)
    header, *rows = catalog_rows(result.catalog)
    new_groups = {}
    for row in rows:
        values = dict(zip(header, row))
        new_groups[values["code"]] = {
            "code": values["code"], "name": values["name"], "kind": values["kind"],
            "base_points": values["base_points"] or None, "avg_cost": values["avg_cost"] or None,
            "daily_points": values["daily_points"] or None,
            "same_price": values["same_price"] == "1", "readmission_exempt": values["readmission_exempt"] == "1",
        }
    with transaction.atomic():
        catalog = _catalog_revision_values(region=region, year=year, source_year=source_year)
        kept = [g for g in catalog["groups"] if g["code"] not in new_groups]
        catalog["groups"] = sorted(kept + list(new_groups.values()), key=lambda g: g["code"])
        catalog_revision = parameter_revision_draft(region=region, kind=ParameterKind.CATALOG, year=year, values=catalog,
                                                    reason=reason, user=user)
        scheme = _scheme_revision_values(region=region, year=year, source_year=source_year)
        scheme["all_case_avg_cost"] = str(result.all_case_avg_cost)
        scheme_revision = parameter_revision_draft(region=region, kind=ParameterKind.SCHEME, year=year, values=scheme,
                                                   reason=reason, user=user)
        return RateSetting.objects.create(
            region=region, year=year, reference_years=list(result.reference_years), weights=list(result.weights),
            all_case_avg_cost=result.all_case_avg_cost, summary=result.summary(), report=report_rows(result.report),
            catalog=catalog_rows(result.catalog), reason=reason, created_by=user,
            applied={"catalog_revision": catalog_revision.pk, "scheme_revision": scheme_revision.pk},
        )


# --- scenarios (§2) ------------------------------------------------------------------------------

CHANGE_KEYS = ("budget", "scheme", "catalog", "coefficients", "special_reviews")
BUDGET_KEYS = ("base_amount", "growth_rate", "growth_cap", "policy_adjustment", "reserve_rate", "outpatient_share", "primary_care_share")


def _clean_text(value: Any, limit: int) -> str:
    text = str(value or "")
    if "\x00" in text:
        raise ValidationError(_("文本中不能含有空字符"))
    text = "".join(ch for ch in text if ch in "\t\n" or ch >= " ")
    return text[:limit]


def _decimal(value: Any, where: str, *, places: int) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ValidationError(_("%(where)s：应为小数文本") % {"where": where})
    try:
        number = Decimal(str(value).strip())
    except Exception:
        raise ValidationError(_("%(where)s：%(value)r 不是数字") % {"where": where, "value": str(value)[:40]}) from None
    if not number.is_finite() or number < 0 or number >= Decimal(10) ** 12 or number != number.quantize(Decimal(1).scaleb(-places)):
        raise ValidationError(_("%(where)s：%(value)s 超出范围或小数位过多") % {"where": where, "value": str(value)[:40]})
    return number


def scenario_changes_validate(*, region: Region, fund: str, year: int, changes: Any) -> dict:
    """Check a scenario's changes and return them in stored form; ValidationError names every
    problem. Budget and scheme values go through the bundle's own params.json rules."""
    if changes in (None, ""):
        changes = {}
    if not isinstance(changes, dict):
        raise ValidationError(_("变更内容应为 JSON 对象"))
    unknown = sorted(set(changes) - set(CHANGE_KEYS))
    if unknown:
        raise ValidationError(_("未知的变更项：%(keys)s（可用：%(allowed)s）") % {"keys": ", ".join(map(str, unknown))[:200], "allowed": ", ".join(CHANGE_KEYS)})
    clean: dict = {}
    budget_changes = changes.get("budget") or {}
    scheme_changes = changes.get("scheme") or {}
    if not isinstance(budget_changes, dict) or not isinstance(scheme_changes, dict):
        raise ValidationError(_("budget 与 scheme 应为 JSON 对象"))
    if budget_changes or scheme_changes:
        current = budget_current(region=region, fund=fund, year=year)
        if current is None and budget_changes:
            raise ValidationError(_("该统筹池没有已批准的预算"))
        unknown = sorted(set(budget_changes) - set(BUDGET_KEYS))
        if unknown:
            raise ValidationError(_("未知的预算项：%(keys)s") % {"keys": ", ".join(map(str, unknown))[:200]})
        check = SchemeCheck()
        if budget_changes:
            values = asdict(budget_inputs_of(current))
            for key, value in budget_changes.items():
                money = key in ("base_amount", "policy_adjustment")
                number = check.decimal(value, f"budget.{key}", places=2 if money else RATE_PLACES,
                                       int_digits=MONEY_INT_DIGITS if money else RATE_INT_DIGITS,
                                       signed=key in ("policy_adjustment", "growth_rate"))
                if number is not None:
                    values[key] = number
            if not check.errors:
                try:
                    budget_lines(BudgetInputs(**values))  # the growth cap and the other budget rules
                except BudgetRuleError as exc:
                    check.error(f"budget.{exc.field}", exc.message)
            if not check.errors:
                clean["budget"] = {k: str(values[k]) for k in budget_changes}
        if scheme_changes:
            scheme = settlement_selectors.pool_scheme(region_id=region.pk, year=year)
            # the scheme rules of params.json and the admin (drg.domain.scheme), on the merged scheme
            parsed = parse_scheme({**json.loads(json.dumps(scheme.as_dict, default=str), parse_float=Decimal),
                                   **json.loads(json.dumps(scheme_changes, default=str), parse_float=Decimal)}, check)
            if not check.errors:
                clean["scheme"] = {k: (str(parsed[k]) if isinstance(parsed[k], Decimal) else _json_ready(parsed[k])) for k in scheme_changes}
        if check.errors:
            raise ValidationError([f"{e.column}: {e.reason}" for e in check.errors[:20]])
    catalog = changes.get("catalog")
    if catalog:
        if not isinstance(catalog, dict):
            raise ValidationError(_("catalog 应为 JSON 对象"))
        clean["catalog"] = _validate_catalog_change(region=region, catalog=catalog)
    coefficients = changes.get("coefficients")
    if coefficients:
        clean["coefficients"] = _validate_coefficients(region=region, value=coefficients)
    reviews = changes.get("special_reviews")
    if reviews:
        if not isinstance(reviews, dict) or set(reviews) - {"exclude"} or not isinstance(reviews.get("exclude"), list):
            raise ValidationError(_('special_reviews 应为 {"exclude": ["机构编码/病例号", …]}'))
        clean["special_reviews"] = {"exclude": sorted({_clean_text(x, 80) for x in reviews["exclude"]})[:100_000]}
    return clean


def _json_ready(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    return value


def _validate_catalog_change(*, region: Region, catalog: dict) -> dict:
    if set(catalog) - {"rate_setting", "groups", "all_case_avg_cost_from_rate_setting"}:
        raise ValidationError(_("catalog 只接受 rate_setting（测算结果编号）或 groups（病组列表）"))
    out: dict = {}
    if "rate_setting" in catalog:
        pk = catalog["rate_setting"]
        if isinstance(pk, bool) or not isinstance(pk, int) or not RateSetting.objects.filter(pk=pk, region=region).exists():
            raise ValidationError(_("找不到该统筹区的测算结果 %(pk)s") % {"pk": str(pk)[:20]})
        out["rate_setting"] = pk
    groups = catalog.get("groups") or []
    if not isinstance(groups, list):
        raise ValidationError(_("catalog.groups 应为列表"))
    clean_groups = []
    for i, group in enumerate(groups[:5000]):
        if not isinstance(group, dict) or "code" not in group or set(group) - {"code", "base_points", "avg_cost", "daily_points"}:
            raise ValidationError(_("catalog.groups[%(i)s]：应含 code 及 base_points/avg_cost/daily_points") % {"i": i})
        entry = {"code": _clean_text(group["code"], 16)}
        for key, places in (("base_points", 4), ("avg_cost", 2), ("daily_points", 4)):
            if key in group:
                entry[key] = str(_decimal(group[key], f"catalog.groups[{i}].{key}", places=places))
        clean_groups.append(entry)
    if clean_groups:
        out["groups"] = clean_groups
    return out


def _validate_coefficients(*, region: Region, value: Any) -> dict:
    if not isinstance(value, dict) or set(value) - {"institutions", "groups"}:
        raise ValidationError(_('coefficients 应为 {"institutions": {机构编码: 系数}, "groups": [...]}'))
    codes = set(Institution.objects.filter(region=region).values_list("code", flat=True))
    out: dict = {}
    institutions = value.get("institutions") or {}
    if not isinstance(institutions, dict):
        raise ValidationError(_("coefficients.institutions 应为对象"))
    for code, coefficient in institutions.items():
        if code not in codes:
            raise ValidationError(_("未知机构：%(code)s") % {"code": str(code)[:40]})
        out.setdefault("institutions", {})[code] = str(_decimal(coefficient, f"coefficients.institutions.{code}", places=4))
    groups = value.get("groups") or []
    if not isinstance(groups, list):
        raise ValidationError(_("coefficients.groups 应为列表"))
    for i, entry in enumerate(groups[:100_000]):
        if not isinstance(entry, dict) or set(entry) != {"institution", "drg_code", "coefficient"} or entry["institution"] not in codes:
            raise ValidationError(_("coefficients.groups[%(i)s]：应为 {institution, drg_code, coefficient}，机构须存在") % {"i": i})
        out.setdefault("groups", []).append({"institution": entry["institution"], "drg_code": _clean_text(entry["drg_code"], 16),
                                             "coefficient": str(_decimal(entry["coefficient"], f"coefficients.groups[{i}]", places=4))})
    return out


def scenario_create(*, region: Region, fund: str, year: int, month: int | None, name: str, changes: Any, user=None,
                    run_async: bool = True) -> Scenario:
    """Record a scenario of the pool and period from its binding run, and run it (on Celery, or
    inline). Every change is validated first."""
    if month is not None and not 1 <= int(month) <= 12:
        raise ValidationError(_("月份应为 1–12"))
    base = selectors.binding_run(region=region, fund=fund, year=year, month=month)
    if base is None:
        raise ValidationError(_("该统筹池此期间还没有已定稿的清算运行，无法作为模拟基准"))
    clean = scenario_changes_validate(region=region, fund=fund, year=year, changes=changes)
    scenario = Scenario.objects.create(region=region, fund=fund, year=year, month=month, base_run=base,
                                       name=_clean_text(name, MAX_NAME).strip() or _("未命名模拟"), changes=clean, created_by=user)
    if run_async:
        dispatch.scenario_enqueue(scenario_id=scenario.pk)
        return scenario
    return scenario_execute(scenario_id=scenario.pk)


def _scenario_inputs(scenario: Scenario, run_like):
    """The pool inputs as a clearing run reads them, with the scenario's changes applied."""
    inputs = settlement_services._pool_inputs(run_like)
    changes = scenario.changes or {}
    if changes.get("budget"):
        base = asdict(budget_inputs_of(inputs.budget))
        merged = BudgetInputs(**{**base, **{k: Decimal(v) for k, v in changes["budget"].items()}})
        lines = budget_lines(merged)
        inputs.budget = SimpleNamespace(revision=f"scenario:{scenario.pk}", total=lines.total, reserve=lines.reserve,
                                        outpatient=lines.outpatient, inpatient=lines.inpatient)
    if changes.get("scheme") or (changes.get("catalog") or {}).get("rate_setting"):
        stored = PaymentScheme.objects.get(region_id=scenario.region_id, year=scenario.year)
        edited = PaymentScheme(**{f.attname: getattr(stored, f.attname) for f in PaymentScheme._meta.concrete_fields if f.attname != "id"})
        proposal_id = (changes.get("catalog") or {}).get("rate_setting")
        if proposal_id:
            edited.all_case_avg_cost = RateSetting.objects.get(pk=proposal_id).all_case_avg_cost
        for key, value in (changes.get("scheme") or {}).items():
            setattr(edited, key, Decimal(value) if isinstance(value, str) else value)
        inputs.scheme = settlement_selectors.scheme_parameters(edited)
    if changes.get("catalog") or changes.get("coefficients"):
        inputs.catalog = _changed_catalog(inputs.catalog, changes, region_id=scenario.region_id)
    return inputs


def _changed_catalog(catalog: Catalog, changes: dict, *, region_id: int) -> Catalog:
    groups = catalog.groups.copy()
    updates: dict[str, dict] = {}
    proposal_id = (changes.get("catalog") or {}).get("rate_setting")
    if proposal_id:
        header, *rows = RateSetting.objects.get(pk=proposal_id).catalog
        for row in rows:
            values = dict(zip(header, row))
            updates[values["code"]] = {k: values[k] for k in ("base_points", "avg_cost", "daily_points")}
    for entry in (changes.get("catalog") or {}).get("groups", []):
        updates.setdefault(entry["code"], {}).update({k: v for k, v in entry.items() if k != "code"})
    index = {code: i for i, code in enumerate(groups["code"])}
    for code, values in updates.items():
        if code not in index:
            raise ValidationError(_("病组 %(code)s 不在该年度目录中") % {"code": code})
        for key, column, scale in (("base_points", "base_u", 10_000), ("avg_cost", "avg_fen", 100), ("daily_points", "daily_u", 10_000)):
            if key in values:
                groups.at[index[code], column] = pd.NA if values[key] in ("", None) else int(Decimal(values[key]) * scale)
    coefficients = catalog.coefficients
    defaults = dict(catalog.institution_coefficients)
    changed = changes.get("coefficients") or {}
    if changed:
        ids = dict(Institution.objects.filter(region_id=region_id).values_list("code", "id"))
        for code, value in (changed.get("institutions") or {}).items():
            defaults[ids[code]] = int(Decimal(value) * 10_000)
        if changed.get("groups"):
            extra = pd.DataFrame([{"institution": ids[e["institution"]], "drg_code": e["drg_code"], "coef_u": int(Decimal(e["coefficient"]) * 10_000)}
                                  for e in changed["groups"]])
            coefficients = pd.concat([extra, coefficients], ignore_index=True).drop_duplicates(["institution", "drg_code"], keep="first")
    return replace(catalog, groups=groups, coefficients=coefficients, institution_coefficients=defaults)


def scenario_execute(*, scenario_id: int) -> Scenario:
    """Value and clear the scenario (SETTLEMENT.md rules unchanged); store its per-institution lines
    and totals. Idempotent: only a queued scenario is run; a failure is recorded on it."""
    claimed = Scenario.objects.filter(pk=scenario_id, status=ScenarioStatus.QUEUED).update(status=ScenarioStatus.RUNNING)
    scenario = Scenario.objects.select_related("region", "base_run").get(pk=scenario_id)
    if not claimed:
        return scenario
    timings: dict = {}
    try:
        computed = scenario_compute(scenario=scenario, timings=timings)
        started = time.perf_counter()
        with transaction.atomic():
            ScenarioLine.objects.filter(scenario=scenario).delete()
            ScenarioLine.objects.bulk_create([ScenarioLine(scenario=scenario, **line) for line in computed["lines"]])
            scenario.totals = computed["totals"]
            scenario.fingerprint = computed["fingerprint"]
            scenario.same_inputs_as_base = bool(scenario.base_run and scenario.base_run.fingerprint == computed["fingerprint"])
            timings["store"] = round(time.perf_counter() - started, 3)
            scenario.timings = timings
            scenario.status = ScenarioStatus.DONE
            scenario.finished_at = timezone.now()
            scenario.save()
    except (ValidationError, ValuationInputError, ClearingError, PaymentScheme.DoesNotExist, ValueError) as exc:
        _scenario_failed(scenario_id, exc, timings)
        scenario.refresh_from_db()
    except Exception as exc:  # recorded on the scenario (never left running), then re-raised for the log
        logger.exception("scenario %s failed", scenario_id)
        _scenario_failed(scenario_id, exc, timings)
        raise
    return scenario


def _scenario_failed(scenario_id: int, exc: Exception, timings: dict) -> None:
    Scenario.objects.filter(pk=scenario_id).update(status=ScenarioStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:4000],
                                                   finished_at=timezone.now(), timings=timings)


def scenario_compute(*, scenario: Scenario, timings: dict | None = None, with_cases: bool = False) -> dict:
    """Lines, totals and fingerprint of a scenario, computed (nothing stored). `with_cases` also
    returns the per-case valuation (the case detail, recomputed on demand)."""
    timings = {} if timings is None else timings
    started = time.perf_counter()
    run_like = SimpleNamespace(pk=None, region=scenario.region, region_id=scenario.region_id, fund=scenario.fund,
                               year=scenario.year, month=scenario.month)
    inputs = _scenario_inputs(scenario, run_like)
    cases = settlement_selectors.pool_cases_frame(region_id=scenario.region_id, fund=scenario.fund, start=inputs.start, end=inputs.end)
    excluded = (scenario.changes.get("special_reviews") or {}).get("exclude") or []
    if excluded:
        ids = dict(Institution.objects.filter(region_id=scenario.region_id).values_list("id", "code"))
        keys = cases["institution"].map(ids).astype(str) + "/" + cases["case_no"].astype(str)
        cases.loc[keys.isin(set(excluded)).to_numpy(), "review_fen"] = -1
    timings["load"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    values = value_cases(cases, inputs.catalog, inputs.scheme.valuation)
    timings["value"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    # net of the same earlier payments as the binding run it replays (not of the binding run itself)
    settled = (scenario.base_run.parameters or {}).get(settlement_services.SETTLED_RUNS)
    cleared = settlement_services._clear(run_like, inputs, scaleout.institution_aggregates(cases, values),
                                         settled_run_ids=settled)
    fingerprint = settlement_services._fingerprint(scaleout.institution_digests(cases), inputs.catalog, cleared.parameters)
    timings["clear"] = round(time.perf_counter() - started, 3)
    lines = []
    for line in cleared.lines:
        if scenario.month:
            payment = line["due"]
            surplus, balance = payment - line["itemized_fund"], line["prepay"]
        else:
            payment, surplus, balance = line["fund_payment"], line["surplus"], line["balance"]
        lines.append({"institution_id": line["institution_id"], "case_count": line["case_count"], "points": line["points"],
                      "point_value": line["point_value"], "self_pay": line["self_pay"], "itemized_fund": line["itemized_fund"],
                      "fund_payment": payment, "surplus": surplus, "balance": balance})
    out = {"lines": lines, "totals": cleared.totals, "fingerprint": fingerprint, "parameters": cleared.parameters}
    if with_cases:
        out["cases"], out["values"] = cases, values
    return out


def scenario_case_detail(*, scenario: Scenario, institution: Institution) -> pd.DataFrame:
    """One institution's cases valued as in the scenario (recomputed: scenarios keep no case rows)."""
    computed = scenario_compute(scenario=scenario, with_cases=True)
    cases, values = computed["cases"], computed["values"]
    mine = (cases["institution"] == institution.pk).to_numpy()
    return pd.DataFrame({
        "case_no": cases.loc[mine, "case_no"].to_numpy(), "valuation_group": values.loc[mine, "valuation_group"].to_numpy(),
        "category": values.loc[mine, "category"].to_numpy(),
        "points": [from_ten_thousandths(int(u)) for u in values.loc[mine, "points_u"]],
    }).sort_values("case_no", kind="stable").reset_index(drop=True)


def scenario_adopt(*, scenario: Scenario, user, reason: str) -> dict:
    """Draft the revisions the scenario describes — a budget revision (budget.services), parameter
    revisions of the scheme, catalog and institution coefficients (drg.revisions) — each approved by
    another person through the ordinary approval. A rate-setting used as the catalog was drafted as
    revisions when it was adopted. Approved special reviews left out are not revisions: nothing to
    draft for them. Returns what was drafted."""
    reason = _clean_text(reason, 2000).strip()
    if not reason:
        raise ValidationError(_("采纳模拟需要填写理由"))
    if scenario.status != ScenarioStatus.DONE:
        raise ValidationError(_("只有已完成的模拟可以采纳"))
    drafted: dict = {}
    changes = scenario.changes or {}
    full_reason = _("采纳模拟测算「%(name)s」：%(reason)s") % {"name": scenario.name, "reason": reason}
    with transaction.atomic():
        if changes.get("budget"):
            current = budget_current(region=scenario.region, fund=scenario.fund, year=scenario.year)
            merged = BudgetInputs(**{**asdict(budget_inputs_of(current)), **{k: Decimal(v) for k, v in changes["budget"].items()}})
            budget = budget_draft(region=scenario.region, fund=scenario.fund, year=scenario.year, inputs=merged, user=user,
                                  reason=full_reason)
            drafted["budget"] = budget.pk
        drafted.update(_draft_parameter_revisions(scenario=scenario, user=user, reason=full_reason))
        if (changes.get("catalog") or {}).get("rate_setting"):
            drafted["rate_setting"] = changes["catalog"]["rate_setting"]
    if not drafted:
        raise ValidationError(_("该模拟没有任何变更，无需采纳"))
    return drafted


def _draft_parameter_revisions(*, scenario: Scenario, user, reason: str) -> dict:
    """Scheme, catalog and coefficient changes of a scenario as parameter revision drafts
    (drg.revisions: approved by another person, then in force for the next run)."""
    changes, region, year = scenario.changes or {}, scenario.region, scenario.year
    drafted: dict = {}
    if changes.get("scheme"):
        values = scheme_values(PaymentScheme.objects.get(region=region, year=year))
        values.update(changes["scheme"])
        drafted["scheme_revision"] = parameter_revision_draft(region=region, kind=ParameterKind.SCHEME, year=year, values=values,
                                                              reason=reason, user=user).pk
    groups = (changes.get("catalog") or {}).get("groups") or []
    group_coefficients = (changes.get("coefficients") or {}).get("groups") or []
    if groups or group_coefficients:
        values = parameter_values_in_force(region=region, kind=ParameterKind.CATALOG, year=year)
        by_code = {g["code"]: g for g in values["groups"]}
        for entry in groups:
            by_code[entry["code"]].update({k: (v or None) for k, v in entry.items() if k != "code"})
        coefficients = {(c["institution"], c["drg_code"]): c for c in values["coefficients"]}
        for entry in group_coefficients:
            coefficients[(entry["institution"], entry["drg_code"])] = dict(entry)
        values["coefficients"] = [coefficients[key] for key in sorted(coefficients)]
        drafted["catalog_revision"] = parameter_revision_draft(region=region, kind=ParameterKind.CATALOG, year=year, values=values,
                                                               reason=reason, user=user).pk
    defaults = (changes.get("coefficients") or {}).get("institutions") or {}
    if defaults:
        values = parameter_values_in_force(region=region, kind=ParameterKind.INSTITUTIONS, year=None)
        for row in values["institutions"]:
            if row["code"] in defaults:
                row["coefficient"] = defaults[row["code"]]
        drafted["institutions_revision"] = parameter_revision_draft(region=region, kind=ParameterKind.INSTITUTIONS, year=None,
                                                                    values=values, reason=reason, user=user).pk
    return drafted


def scenario_export(*, scenario: Scenario) -> dict:
    """JSON-ready record of a scenario with its lines and the binding run's lines side by side."""
    base = selectors.run_lines_for_compare(run=scenario.base_run) if scenario.base_run else {}
    lines = []
    for line in scenario.lines.select_related("institution").order_by("institution__code"):
        code = line.institution.code
        entry = {"institution_code": code, "case_count": line.case_count}
        for field in selectors.COMPARE_FIELDS:
            entry[field] = str(getattr(line, field))
            binding = (base.get(code) or {}).get(field)
            entry[f"binding_{field}"] = None if binding is None else str(binding)
        lines.append(entry)
    return {
        "scenario": scenario.pk, "name": scenario.name, "region": scenario.region.code, "fund": scenario.fund,
        "year": scenario.year, "month": scenario.month, "status": scenario.status, "base_run": scenario.base_run_id,
        "changes": scenario.changes, "fingerprint": scenario.fingerprint, "same_inputs_as_base": scenario.same_inputs_as_base,
        "created_by": getattr(scenario.created_by, "username", None), "created_at": scenario.created_at.isoformat(),
        "totals": scenario.totals, "error": scenario.error, "lines": lines,
    }


# --- forecast (§3) -------------------------------------------------------------------------------

def season_record(*, run_id: int) -> Season | None:
    """Record the season basis of a binding annual run (idempotent): Σ case points and Σ fund claims
    by discharge month, one aggregate query over the run's case results. Runs once after the annual
    finalization (a Celery task), so that the forecasts of the next year read a few numbers."""
    run = ClearingRun.objects.get(pk=run_id)
    if run.kind != RunKind.ANNUAL or run.status != RunStatus.FINALIZED:
        return None
    existing = Season.objects.filter(run=run).first()
    if existing is not None:
        return existing
    points, claims = selectors.annual_points_and_claims_by_month(run=run)
    season, _created = Season.objects.get_or_create(run=run, defaults={
        "points_by_month": {str(m): _fraction_text(v) for m, v in sorted(points.items())},
        "claims_by_month": {str(m): _fraction_text(v) for m, v in sorted(claims.items())},
    })
    return season


def _season(*, region_id: int, fund: str, year: int, month: int) -> forecast_domain.Season:
    previous = selectors.binding_run(region=Region.objects.get(pk=region_id), fund=fund, year=year - 1)
    if previous is None:
        return forecast_domain.uniform_season(month)
    recorded = Season.objects.filter(run=previous).first() or season_record(run_id=previous.pk)
    return forecast_domain.season_from_months(
        month=month, points_by_month={int(m): Fraction(v) for m, v in recorded.points_by_month.items()},
        claims_by_month={int(m): Fraction(v) for m, v in recorded.claims_by_month.items()},
    )


def forecast_compute(*, run: ClearingRun) -> forecast_domain.ForecastResult:
    """The year-end estimate from a monthly run's lines (nothing stored)."""
    if run.kind != RunKind.MONTHLY or not run.month:
        raise ValidationError(_("只有月度运行可以预测年末点值"))
    lines = list(run.lines.values_list("institution_id", "points", "self_pay"))
    budget = budget_current(region=run.region, fund=run.fund, year=run.year)
    if budget is None:
        raise ValidationError(_("该统筹池没有已批准的预算"))
    scheme = settlement_selectors.pool_scheme(region_id=run.region_id, year=run.year)
    itemized = Decimal(run.totals.get("special_outpatient") or run.parameters.get("itemized") or "0")
    return forecast_domain.forecast_year_end(
        month=run.month, season=_season(region_id=run.region_id, fund=run.fund, year=run.year, month=run.month),
        points_to_date={i: p for i, p, _s in lines}, self_pay_to_date={i: s for i, _p, s in lines},
        fund_claims_to_date=Decimal(run.totals["fund_claims"]), drg_budget=budget.inpatient - itemized,
        reserve=budget.reserve, params=scheme.clearing,
    )


def forecast_after_run(*, run_id: int) -> Forecast | None:
    """Store the forecast of a finalized monthly run of months 1–11 (idempotent: one per run)."""
    run = ClearingRun.objects.select_related("region").get(pk=run_id)
    if run.kind != RunKind.MONTHLY or run.status != RunStatus.FINALIZED or not run.month or run.month >= 12:
        return None
    existing = Forecast.objects.filter(run=run).first()
    if existing is not None:
        return existing
    result = forecast_compute(run=run)
    band = forecast_band(region=run.region, fund=run.fund, year=run.year).get(run.month)
    points = dict(run.lines.values_list("institution_id", "points"))
    with transaction.atomic():
        forecast, created = Forecast.objects.get_or_create(run=run, defaults=dict(
            region=run.region, fund=run.fund, year=run.year, month=run.month,
            season_points=_fraction_text(result.season.points), season_claims=_fraction_text(result.season.claims),
            season_source=result.season.source, run_point_value=Decimal(run.totals["point_value"]),
            point_value=result.point_value, distributed=result.distributed,
            points=r4(result.points),
            fund_claims=r2(result.fund_claims),
            band=None if band is None else round_half_up(band, 6),
        ))
        if created:
            ForecastLine.objects.bulk_create([
                ForecastLine(forecast=forecast, institution_id=inst, points=points[inst],
                             points_forecast=result.points_by_institution[inst], payment=result.payments[inst])
                for inst in sorted(result.payments)
            ])
    return forecast


def _fraction_text(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def forecast_backtest(*, region: Region, fund: str, year: int) -> list[dict]:
    """For each month 1–11 of `year` with a finalized monthly run: the forecast that month gives,
    the binding annual V and |V̂ − V| / V (the forecast's track record)."""
    annual = selectors.binding_run(region=region, fund=fund, year=year)
    if annual is None:
        raise ValidationError(_("%(year)s 年还没有已定稿的年度清算，无法回测") % {"year": year})
    actual = Decimal(annual.totals["point_value"])
    rows = []
    for month in range(1, 12):
        run = selectors.binding_run(region=region, fund=fund, year=year, month=month)
        if run is None:
            continue
        result = forecast_compute(run=run)
        rows.append({"month": month, "run_point_value": Decimal(run.totals["point_value"]), "forecast": result.point_value,
                     "actual": actual, "error": forecast_domain.relative_error(result.point_value_exact, Fraction(annual.totals["point_value_exact"]))
                     if annual.totals.get("point_value_exact") else forecast_domain.relative_error(result.point_value, actual),
                     "season_source": result.season.source})
    return rows


def forecast_band(*, region: Region, fund: str, year: int) -> dict[int, Fraction]:
    """The track-record band per month: the largest relative error of the same month's forecast
    in the past years that have a binding annual run."""
    errors: dict[int, list[Fraction]] = {}
    past_years = sorted(set(ClearingRun.objects.filter(region=region, fund=fund, year__lt=year, kind=RunKind.ANNUAL,
                                                       status=RunStatus.FINALIZED).values_list("year", flat=True)))
    for past in past_years:
        try:
            rows = forecast_backtest(region=region, fund=fund, year=past)
        except (ValidationError, forecast_domain.ForecastError):
            continue
        for row in rows:
            errors.setdefault(row["month"], []).append(row["error"])
    return forecast_domain.track_record_band(errors)
