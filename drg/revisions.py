"""Parameters in force, versioned under maker-checker (SETTLEMENT.md §6): reads and writes of
ParameterRevision.

Three kinds of parameters are revisioned: a region-year's payment scheme, a region-year's catalog
(DRG groups, coefficients, TCM equivalents) and a region's institution attributes. The catalog tables
(PaymentScheme, DrgGroup, Coefficient, TcmEquivalent, Institution) hold what is in force and change
only when a revision is approved: a draft carries the full set of values it would put in force and a
reason; another person approves it (the batch system user approves what a bundle loads); approval
writes the values into the tables in the same transaction and records who and when. An approved
revision keeps its values for good: the full snapshot a clearing run that recorded it used.

Values are JSON: decimals as strings at the model's places, so two snapshots compare equal exactly
when the values in force are the same.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from drg.choices import ParameterKind, RevisionStatus
from drg.domain.scheme import scheme_tiers_validate
from drg.models import Coefficient, DrgGroup, Institution, ParameterRevision, PaymentScheme, Region, TcmEquivalent

GROUP_FIELDS = ("code", "name", "kind", "base_points", "avg_cost", "daily_points", "same_price", "readmission_exempt")
COEFFICIENT_FIELDS = ("institution", "drg_code", "coefficient")
TCM_FIELDS = ("drg_code", "equivalent_code")
INSTITUTION_FIELDS = ("code", "name", "level", "category", "is_public", "group_code", "coefficient")
SCHEME_FIELDS = ("all_case_avg_cost", "high_outlier_tiers", "low_outlier_multiple", "readmission_days",
                 "readmission_factor", "prepay_ratio", "surplus_tiers", "overrun_tiers", "tcm_rate_tiers")

# the tables of each kind: name in values -> (model, fields, key fields)
TABLES: dict[str, dict[str, tuple[type[models.Model], tuple[str, ...], tuple[str, ...]]]] = {
    ParameterKind.CATALOG: {
        "groups": (DrgGroup, GROUP_FIELDS, ("code",)),
        "coefficients": (Coefficient, COEFFICIENT_FIELDS, ("institution", "drg_code")),
        "tcm_equivalents": (TcmEquivalent, TCM_FIELDS, ("drg_code",)),
    },
    ParameterKind.INSTITUTIONS: {"institutions": (Institution, INSTITUTION_FIELDS, ("code",))},
}
TABLE_KIND = {table: kind for kind, tables in TABLES.items() for table in tables}


class RevisionRefused(ValidationError):
    """A draft, change or decision the rules refuse (the message says why)."""


# --- values <-> JSON ------------------------------------------------------------------------------

def _json_value(model: type[models.Model], name: str, value: Any) -> Any:
    field = model._meta.get_field(name)
    if value is None:
        return None
    if isinstance(field, models.DecimalField):
        return str(Decimal(value).quantize(Decimal(1).scaleb(-field.decimal_places)))
    if isinstance(field, models.BooleanField):
        return bool(value)
    if isinstance(field, (models.PositiveSmallIntegerField, models.IntegerField)):
        return int(value)
    if isinstance(field, models.JSONField):
        return value
    return str(value)


def _row(model, fields, obj, institution_codes: dict[int, str] | None = None) -> dict:
    row = {}
    for name in fields:
        if name == "institution":
            row[name] = institution_codes[obj.institution_id]
        else:
            row[name] = _json_value(model, name, getattr(obj, name))
    return row


def _key(row: dict, key_fields: tuple[str, ...]) -> tuple:
    return tuple(row[name] for name in key_fields)


def scheme_values(scheme: PaymentScheme) -> dict:
    return {name: _json_value(PaymentScheme, name, getattr(scheme, name)) for name in SCHEME_FIELDS}


def parameter_values_in_force(*, region: Region, kind: str, year: int | None) -> dict | None:
    """The full snapshot of what is in force now (None: a year without a scheme)."""
    if kind == ParameterKind.SCHEME:
        scheme = PaymentScheme.objects.filter(region=region, year=year).first()
        return None if scheme is None else scheme_values(scheme)
    if kind == ParameterKind.INSTITUTIONS:
        return {"institutions": [_row(Institution, INSTITUTION_FIELDS, i) for i in Institution.objects.filter(region=region).order_by("code")]}
    codes = dict(Institution.objects.filter(region=region).values_list("pk", "code"))
    coefficients = Coefficient.objects.filter(institution__region=region, year=year)
    return {
        "groups": [_row(DrgGroup, GROUP_FIELDS, g) for g in DrgGroup.objects.filter(region=region, year=year).order_by("code")],
        "coefficients": sorted((_row(Coefficient, COEFFICIENT_FIELDS, c, codes) for c in coefficients),
                               key=lambda r: (r["institution"], r["drg_code"])),
        "tcm_equivalents": [_row(TcmEquivalent, TCM_FIELDS, t) for t in TcmEquivalent.objects.filter(region=region, year=year).order_by("drg_code")],
    }


def _normalise(*, region: Region, kind: str, values: dict) -> dict:
    """Values checked field by field by the models' own rules (types, choices, check constraints) and
    put in canonical form; RevisionRefused lists every bad value."""
    errors: list[str] = []
    if kind == ParameterKind.SCHEME:
        return _normalise_scheme(values, errors)
    out: dict[str, list] = {}
    known_institutions = set(Institution.objects.filter(region=region).values_list("code", flat=True))
    for table, (model, fields, key_fields) in TABLES[kind].items():
        rows, seen = [], set()
        for i, raw in enumerate(values.get(table) or []):
            at = f"{table}[{i}]"
            row = _normalise_row(model, fields, raw, at, errors)
            if row is None:
                continue
            key = _key(row, key_fields)
            if key in seen:
                errors.append(_("%(at)s: 重复的 %(key)s") % {"at": at, "key": "/".join(map(str, key))})
            seen.add(key)
            if table == "coefficients" and row["institution"] not in known_institutions:
                errors.append(_("%(at)s: 本统筹区没有机构 %(code)s") % {"at": at, "code": row["institution"]})
            rows.append(row)
        out[table] = sorted(rows, key=lambda r: _key(r, key_fields))
    if kind == ParameterKind.CATALOG:
        groups = {g["code"] for g in out["groups"]}
        for row in out["tcm_equivalents"]:
            if row["equivalent_code"] not in groups:
                errors.append(_("tcm_equivalents %(code)s: 等效病组 %(eq)s 不在目录中") % {"code": row["drg_code"], "eq": row["equivalent_code"]})
    if kind == ParameterKind.INSTITUTIONS:
        missing = known_institutions - {row["code"] for row in out["institutions"]}
        if missing:
            errors.append(_("机构不能删除（已有病例）：%(codes)s") % {"codes": ", ".join(sorted(missing))})
    unknown = set(values) - set(TABLES[kind])
    if unknown:
        errors.append(_("未知的表：%(names)s") % {"names": ", ".join(sorted(unknown))})
    if errors:
        raise RevisionRefused(errors)
    return out


def _normalise_row(model, fields, raw, at: str, errors: list[str]) -> dict | None:
    if not isinstance(raw, dict) or set(raw) - set(fields):
        errors.append(_("%(at)s: 应为含字段 %(fields)s 的对象") % {"at": at, "fields": ", ".join(fields)})
        return None
    instance = model()
    for name in fields:
        if name == "institution":
            continue
        field = model._meta.get_field(name)
        value = raw.get(name, field.get_default() if field.has_default() else None)
        if value == "" and field.null:
            value = None
        try:
            setattr(instance, name, field.to_python(value))
        except ValidationError as exc:
            errors.append(f"{at}.{name}: {'; '.join(exc.messages)}")
            return None
    exclude = {f.name for f in model._meta.fields if f.name not in fields or f.name == "institution"}
    try:
        instance.clean_fields(exclude=exclude)
        for constraint in model._meta.constraints:
            if isinstance(constraint, models.CheckConstraint):
                constraint.validate(model, instance, exclude=exclude)
    except ValidationError as exc:
        details = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
        errors.extend(f"{at}.{name}: {'; '.join(messages)}" if name and name != "__all__" else f"{at}: {'; '.join(messages)}"
                      for name, messages in details.items())
        return None
    for name in fields:
        value = raw.get(name)
        if isinstance(value, str) and any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            errors.append(f"{at}.{name}: " + _("含有控制字符"))
            return None
    row = {}
    for name in fields:
        if name == "institution":
            code = str(raw.get("institution") or "").strip()
            if not code:
                errors.append(f"{at}.institution: " + _("必填"))
                return None
            row[name] = code
        else:
            row[name] = _json_value(model, name, getattr(instance, name))
    return row


def _normalise_scheme(values: dict, errors: list[str]) -> dict:
    unknown = set(values) - set(SCHEME_FIELDS)
    if unknown:
        errors.append(_("未知的方案参数：%(names)s") % {"names": ", ".join(sorted(unknown))})
    instance = PaymentScheme()
    out: dict[str, Any] = {}
    for name in SCHEME_FIELDS:
        field = PaymentScheme._meta.get_field(name)
        value = values.get(name, field.get_default())
        if name.endswith("_tiers"):
            tiers, problems = scheme_tiers_validate(name, value)
            errors.extend(problems)
            out[name] = tiers
            continue
        try:
            setattr(instance, name, field.to_python(value))
        except (ValidationError, InvalidOperation) as exc:
            errors.append(f"{name}: {'; '.join(getattr(exc, 'messages', [str(exc)]))}")
    if errors:
        raise RevisionRefused(errors)
    exclude = {"id", "region", "year", *[n for n in SCHEME_FIELDS if n.endswith("_tiers")]}
    try:
        instance.clean_fields(exclude=exclude)
        for constraint in PaymentScheme._meta.constraints:
            if isinstance(constraint, models.CheckConstraint):
                constraint.validate(PaymentScheme, instance, exclude=exclude)
    except ValidationError as exc:
        raise RevisionRefused(exc.messages) from exc
    for name in SCHEME_FIELDS:
        if not name.endswith("_tiers"):
            out[name] = _json_value(PaymentScheme, name, getattr(instance, name))
    return out


def _check_text(reason: str) -> None:
    if "\x00" in reason or any(0xD800 <= ord(ch) <= 0xDFFF for ch in reason):
        raise RevisionRefused({"reason": _("理由含有不允许的字符")})


# --- reads ----------------------------------------------------------------------------------------

def _revisions(*, region: Region, kind: str, year: int | None):
    revisions = ParameterRevision.objects.filter(region=region, kind=kind)
    return revisions.filter(year__isnull=True) if year is None else revisions.filter(year=year)


def _year_of(kind: str, year: int | None) -> int | None:
    return None if kind == ParameterKind.INSTITUTIONS else year


def parameter_revision_current(*, region: Region, kind: str, year: int | None) -> ParameterRevision | None:
    """The approved revision in force (the highest approved one)."""
    return (_revisions(region=region, kind=kind, year=_year_of(kind, year)).filter(status=RevisionStatus.APPROVED)
            .order_by("-revision").first())


def parameter_revision_pending(*, region: Region, kind: str, year: int | None) -> ParameterRevision | None:
    return _revisions(region=region, kind=kind, year=_year_of(kind, year)).filter(status=RevisionStatus.DRAFT).first()


def parameter_revision_changes(*, revision: ParameterRevision, against: dict | None = None) -> list[tuple[str, str, Any, Any]]:
    """What the revision changes, as (table, key, before, after) rows: against the values in force
    for a draft, against the revision it was based on otherwise (a row is None where absent)."""
    if against is None:
        if revision.status == RevisionStatus.DRAFT:
            against = parameter_values_in_force(region=revision.region, kind=revision.kind, year=revision.year) or {}
        else:
            against = revision.based_on.values if revision.based_on_id else {}
    return values_diff(kind=revision.kind, before=against or {}, after=revision.values)


def values_diff(*, kind: str, before: dict, after: dict) -> list[tuple[str, str, Any, Any]]:
    changes = []
    if kind == ParameterKind.SCHEME:
        for name in SCHEME_FIELDS:
            if before.get(name) != after.get(name):
                changes.append(("scheme", name, before.get(name), after.get(name)))
        return changes
    for table, (_model, _fields, key_fields) in TABLES[kind].items():
        old = {_key(r, key_fields): r for r in before.get(table) or []}
        new = {_key(r, key_fields): r for r in after.get(table) or []}
        for key in sorted(set(old) | set(new), key=lambda k: tuple(map(str, k))):
            if old.get(key) != new.get(key):
                changes.append((table, "/".join(map(str, key)), old.get(key), new.get(key)))
    return changes


def parameter_revisions_of_year(*, region: Region, year: int) -> list[ParameterRevision]:
    """The approved revisions a run of the region-year uses: scheme, catalog, institution attributes."""
    found = []
    for kind in (ParameterKind.SCHEME, ParameterKind.CATALOG, ParameterKind.INSTITUTIONS):
        current = parameter_revision_current(region=region, kind=kind, year=year)
        if current is not None:
            found.append(current)
    return found


# --- writes ---------------------------------------------------------------------------------------

def _lock_region(region: Region) -> Region:
    return Region.objects.select_for_update().get(pk=region.pk)


@transaction.atomic
def parameter_revision_draft(
    *, region: Region, kind: str, year: int | None, values: dict, reason: str, user=None
) -> ParameterRevision:
    """A new draft revision of the region(-year)'s parameters of `kind`, with a reason. One draft of a
    kind at a time: change that one (parameter_revision_update) or have it decided first."""
    year = _year_of(kind, year)
    if kind not in ParameterKind.values:
        raise RevisionRefused(_("未知的参数类别 %(kind)s") % {"kind": kind})
    if year is None and kind != ParameterKind.INSTITUTIONS:
        raise RevisionRefused({"year": _("请填写年度")})
    if not (reason or "").strip():
        raise RevisionRefused({"reason": _("修订须写明理由")})
    _check_text(reason)
    _lock_region(region)
    pending = parameter_revision_pending(region=region, kind=kind, year=year)
    if pending is not None:
        raise RevisionRefused(
            _("已有待审核的修订草稿 r%(rev)s（%(who)s 起草）；请修改该草稿或先审核") % {"rev": pending.revision, "who": pending.drafted_by or "—"}
        )
    normalised = _normalise(region=region, kind=kind, values=values)
    latest = _revisions(region=region, kind=kind, year=year).aggregate(r=Max("revision"))["r"] or 0
    return ParameterRevision.objects.create(
        region=region, kind=kind, year=year, revision=latest + 1, reason=reason.strip(), values=normalised,
        based_on=parameter_revision_current(region=region, kind=kind, year=year), drafted_by=user,
    )


@transaction.atomic
def parameter_revision_update(*, revision: ParameterRevision, values: dict, user=None, reason: str | None = None) -> ParameterRevision:
    """Change a draft's values (and reason): only its drafter may, so the approver stays another person."""
    locked = ParameterRevision.objects.select_for_update().select_related("region").get(pk=revision.pk)
    if locked.status != RevisionStatus.DRAFT:
        raise RevisionRefused(_("已审核的修订不能修改；请起草新的修订"))
    if user is not None and locked.drafted_by_id is not None and locked.drafted_by_id != user.pk:
        raise PermissionDenied(_("只有起草人可以修改这份草稿（经办与审核须为不同人员）"))
    locked.values = _normalise(region=locked.region, kind=locked.kind, values=values)
    if reason is not None:
        if not reason.strip():
            raise RevisionRefused({"reason": _("修订须写明理由")})
        _check_text(reason)
        locked.reason = reason.strip()
    locked.save(update_fields=["values", "reason", "updated_at"])
    return locked


def parameter_revision_draft_row(
    *, region: Region, table: str, year: int | None, key: dict, row: dict | None, reason: str, user=None
) -> ParameterRevision:
    """Draft a change of one row (a group, a coefficient, a TCM equivalent, an institution's
    attributes): into the user's open draft of that kind, or a new draft based on what is in force.
    `row` None removes the row (key names it)."""
    kind = TABLE_KIND[table]
    year = _year_of(kind, year)
    _model, _fields, key_fields = TABLES[kind][table]
    with transaction.atomic():
        _lock_region(region)
        pending = parameter_revision_pending(region=region, kind=kind, year=year)
        base = pending.values if pending is not None else parameter_values_in_force(region=region, kind=kind, year=year)
        values = {name: list(rows) for name, rows in (base or {}).items()}
        wanted = tuple(str(key.get(name, "")).strip() for name in key_fields)
        rows = [r for r in values.get(table, []) if tuple(str(r[n]) for n in key_fields) != wanted]
        if row is not None:
            rows.append(row)
        elif len(rows) == len(values.get(table, [])):
            raise RevisionRefused(_("没有要删除的记录 %(key)s") % {"key": "/".join(wanted)})
        values[table] = rows
        if pending is not None:
            return parameter_revision_update(revision=pending, values=values, user=user, reason=reason)
        return parameter_revision_draft(region=region, kind=kind, year=year, values=values, reason=reason, user=user)


def _apply(*, region: Region, kind: str, year: int | None, values: dict, actor, reason: str) -> None:
    """Write the values into the catalog tables: the only writer of what is in force."""
    if kind == ParameterKind.SCHEME:
        scheme = PaymentScheme.objects.filter(region=region, year=year).first() or PaymentScheme(region=region, year=year)
        for name in SCHEME_FIELDS:
            field = PaymentScheme._meta.get_field(name)
            setattr(scheme, name, values[name] if isinstance(field, models.JSONField) else field.to_python(values[name]))
        scheme._history_user, scheme._change_reason = actor, reason
        scheme.save()
        return
    ids = dict(Institution.objects.filter(region=region).values_list("code", "pk"))
    for table, (model, fields, key_fields) in TABLES[kind].items():
        if model is Institution:
            stored = {(o.code,): o for o in Institution.objects.filter(region=region)}
        elif model is Coefficient:
            codes = {pk: code for code, pk in ids.items()}
            stored = {(codes[o.institution_id], o.drg_code): o for o in Coefficient.objects.filter(institution__region=region, year=year)}
        else:
            stored = {_key({n: getattr(o, n) for n in key_fields}, key_fields): o for o in model.objects.filter(region=region, year=year)}
        wanted = {_key(r, key_fields): r for r in values.get(table) or []}
        for key, obj in stored.items():
            if key not in wanted:
                obj._history_user, obj._change_reason = actor, reason
                obj.delete()
        for key, row in wanted.items():
            obj = stored.get(key)
            if obj is None:
                obj = model(region=region) if model is not Coefficient else model(institution_id=ids[row["institution"]])
                if model is not Institution:
                    obj.year = year
            changed = obj.pk is None
            for name in fields:
                if name == "institution":
                    continue
                value = model._meta.get_field(name).to_python(row[name])
                if getattr(obj, name) != value:
                    setattr(obj, name, value)
                    changed = True
            if changed:
                obj._history_user, obj._change_reason = actor, reason
                obj.save()


@transaction.atomic
def parameter_revision_approve(*, revision: ParameterRevision, user, system: bool = False) -> ParameterRevision:
    """Approve a draft and put its values in force, in one transaction. The approver is never the
    drafter (the batch system user excepted); a draft based on a revision that is no longer the one in
    force is refused (draft it again against what is in force now)."""
    _lock_region(revision.region)
    locked = ParameterRevision.objects.select_for_update().select_related("region").get(pk=revision.pk)
    if locked.status != RevisionStatus.DRAFT:
        raise RevisionRefused(_("修订 %(rev)s 不是草稿") % {"rev": locked})
    if not system and (user is None or (locked.drafted_by_id is not None and locked.drafted_by_id == user.pk)):
        raise PermissionDenied(_("经办与审核须为不同人员：起草人不能批准自己的修订"))
    current = parameter_revision_current(region=locked.region, kind=locked.kind, year=locked.year)
    if (current.pk if current else None) != locked.based_on_id:
        raise RevisionRefused(
            _("起草后已有新的修订 r%(rev)s 生效；请驳回本草稿并基于现行参数重新起草") % {"rev": current.revision if current else "—"}
        )
    values = _normalise(region=locked.region, kind=locked.kind, values=locked.values)
    reason = f"r{locked.revision}: {locked.reason}"
    _apply(region=locked.region, kind=locked.kind, year=locked.year, values=values, actor=user, reason=reason[:100])
    locked.values = values
    locked.status = RevisionStatus.APPROVED
    locked.decided_by = user
    locked.decided_at = timezone.now()
    locked.save()
    return locked


@transaction.atomic
def parameter_revision_reject(*, revision: ParameterRevision, user, reason: str) -> ParameterRevision:
    """Reject a draft with a reason; nothing in force changes. The drafter may withdraw their own."""
    if not (reason or "").strip():
        raise RevisionRefused({"reason": _("驳回须写明理由")})
    locked = ParameterRevision.objects.select_for_update().get(pk=revision.pk)
    if locked.status != RevisionStatus.DRAFT:
        raise RevisionRefused(_("修订 %(rev)s 不是草稿") % {"rev": locked})
    locked.status = RevisionStatus.REJECTED
    locked.decided_by = None if locked.drafted_by_id == getattr(user, "pk", None) else user
    locked.decided_at = timezone.now()
    locked.rejection_reason = reason.strip()
    locked.save()
    return locked


@transaction.atomic
def parameter_revision_record(*, region: Region, kind: str, year: int | None, reason: str, user, system_user) -> ParameterRevision | None:
    """Record what is in force now as a revision approved by the system user — for values a bundle
    has just written (its batch door carries approved data), or the first time a region-year's values
    are used without any revision (a baseline). None when it equals the revision in force already."""
    year = _year_of(kind, year)
    _lock_region(region)
    values = parameter_values_in_force(region=region, kind=kind, year=year)
    if values is None:
        return None
    current = parameter_revision_current(region=region, kind=kind, year=year)
    if current is not None and current.values == values:
        return None
    latest = _revisions(region=region, kind=kind, year=year).aggregate(r=Max("revision"))["r"] or 0
    drafter = user if user is not None and user.pk != system_user.pk else None
    return ParameterRevision.objects.create(
        region=region, kind=kind, year=year, revision=latest + 1, reason=reason, values=values, based_on=current,
        status=RevisionStatus.APPROVED, drafted_by=drafter, decided_by=system_user, decided_at=timezone.now(),
    )


def parameter_revisions_for_run(*, region: Region, year: int, system_user) -> list[ParameterRevision]:
    """The approved revisions in force for a run of the region-year, each equal to the values in force.
    Values that no revision records (entered before revisions were kept, or written around the
    revision workflow) are recorded first, approved by the system user with a reason that says so:
    a run is always explained exactly by the revisions it recorded."""
    with transaction.atomic():
        for kind in (ParameterKind.SCHEME, ParameterKind.CATALOG, ParameterKind.INSTITUTIONS):
            first = parameter_revision_current(region=region, kind=kind, year=year) is None
            reason = _("基线：修订记录开始前已生效的参数") if first else _("现行参数与最新修订不一致（未经修订流程写入），按现值记录")
            parameter_revision_record(region=region, kind=kind, year=year, user=None, system_user=system_user, reason=reason)
    return parameter_revisions_of_year(region=region, year=year)


def parameter_revisions_record_load(*, region: Region, year: int, reason: str, user, system_user) -> list[ParameterRevision]:
    """After a bundle wrote the scheme, catalog and institutions of a region-year: a revision approved
    by the system user for each kind whose values in force now differ from its current revision
    (the bundle is the bureau's batch door and carries approved data). Loading the same bundle again
    records nothing."""
    recorded = []
    for kind in (ParameterKind.SCHEME, ParameterKind.CATALOG, ParameterKind.INSTITUTIONS):
        revision = parameter_revision_record(region=region, kind=kind, year=year, reason=reason, user=user, system_user=system_user)
        if revision is not None:
            recorded.append(revision)
    return recorded
