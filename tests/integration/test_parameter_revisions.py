"""Parameters in force are versioned under maker-checker (SETTLEMENT.md §6): the payment scheme, the
catalog and institution attributes change only by an approved revision with a reason; a run records
the revisions it used, and an older run stays explained by its own."""
from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command

from common.precision import r2
from common.users import system_user
from drg import revisions
from drg.choices import ParameterKind, RevisionStatus
from drg.models import Coefficient, DrgGroup, Institution, ParameterRevision, PaymentScheme, Region
from settlement import services
from settlement.models import ClearingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def region(worked_bundle):
    call_command("load_bundle", str(worked_bundle), stdout=open("/dev/null", "w"))
    return Region.objects.get(code="331083")


@pytest.fixture
def users():
    model = get_user_model()
    return model.objects.create_user("operator1"), model.objects.create_user("approver1")


def scheme_with(region, **changes) -> dict:
    values = revisions.parameter_values_in_force(region=region, kind=ParameterKind.SCHEME, year=2025)
    return {**values, **changes}


def test_a_scheme_change_is_a_draft_with_a_reason_that_changes_nothing_until_another_person_approves_it(region, users):
    operator, approver = users
    draft = revisions.parameter_revision_draft(
        region=region, kind=ParameterKind.SCHEME, year=2025, values=scheme_with(region, prepay_ratio="0.90"),
        reason="市医保局文件：月度预付比例调整为 90%", user=operator,
    )
    assert draft.status == RevisionStatus.DRAFT and draft.values["prepay_ratio"] == "0.900000"
    assert PaymentScheme.objects.get(region=region, year=2025).prepay_ratio == D("0.95")  # nothing in force changed
    assert revisions.parameter_revision_changes(revision=draft) == [("scheme", "prepay_ratio", "0.950000", "0.900000")]

    with pytest.raises(PermissionDenied):
        revisions.parameter_revision_approve(revision=draft, user=operator)
    assert PaymentScheme.objects.get(region=region, year=2025).prepay_ratio == D("0.95")

    approved = revisions.parameter_revision_approve(revision=draft, user=approver)
    assert approved.status == RevisionStatus.APPROVED and approved.decided_by == approver and approved.decided_at is not None
    assert PaymentScheme.objects.get(region=region, year=2025).prepay_ratio == D("0.90")
    assert approved.based_on.decided_by == system_user()  # the bundle's own revision, approved by the system user


def test_a_revision_needs_a_reason_and_values_the_models_accept(region, users):
    with pytest.raises(ValidationError, match="理由"):
        revisions.parameter_revision_draft(region=region, kind=ParameterKind.SCHEME, year=2025,
                                           values=scheme_with(region, prepay_ratio="0.90"), reason="  ", user=users[0])
    with pytest.raises(ValidationError) as refused:
        revisions.parameter_revision_draft(
            region=region, kind=ParameterKind.SCHEME, year=2025, reason="试错", user=users[0],
            values=scheme_with(region, prepay_ratio="0.50", high_outlier_tiers=[{"upto": 200, "multiple": 2}, {"upto": 100, "multiple": 3}]),
        )
    text = " ".join(refused.value.messages)
    assert "bounds must increase" in text and "the last tier must be open" in text
    with pytest.raises(ValidationError, match="prepay_ratio"):
        revisions.parameter_revision_draft(region=region, kind=ParameterKind.SCHEME, year=2025,
                                           values=scheme_with(region, prepay_ratio="0.50"), reason="试错", user=users[0])
    assert not ParameterRevision.objects.filter(status=RevisionStatus.DRAFT).exists()


def test_one_draft_at_a_time_and_only_its_drafter_changes_it(region, users):
    operator, approver = users
    draft = revisions.parameter_revision_draft(region=region, kind=ParameterKind.SCHEME, year=2025,
                                               values=scheme_with(region, readmission_days=30), reason="r", user=operator)
    with pytest.raises(ValidationError, match="待审核的修订草稿"):
        revisions.parameter_revision_draft(region=region, kind=ParameterKind.SCHEME, year=2025,
                                           values=scheme_with(region, readmission_days=20), reason="r", user=approver)
    with pytest.raises(PermissionDenied):
        revisions.parameter_revision_update(revision=draft, values=scheme_with(region, readmission_days=20), user=approver)
    updated = revisions.parameter_revision_update(revision=draft, values=scheme_with(region, readmission_days=20), user=operator)
    assert updated.values["readmission_days"] == 20


def test_a_draft_overtaken_by_another_approved_revision_is_refused(region, users):
    operator, approver = users
    with pytest.raises(ValidationError, match="等效病组 GB25 不在目录中"):  # a TCM equivalent points to it
        revisions.parameter_revision_draft_row(region=region, table="groups", year=2025, key={"code": "GB25"},
                                               row=None, reason="合并病组", user=operator)
    stale = revisions.parameter_revision_draft(
        region=region, kind=ParameterKind.CATALOG, year=2025, reason="旧草稿", user=operator,
        values=revisions.parameter_values_in_force(region=region, kind=ParameterKind.CATALOG, year=2025),
    )
    # a bundle (or another path) puts a newer revision in force meanwhile
    DrgGroup.objects.filter(region=region, year=2025).update(name="改名")
    assert revisions.parameter_revision_record(region=region, kind=ParameterKind.CATALOG, year=2025, reason="batch",
                                               user=None, system_user=system_user()) is not None
    with pytest.raises(ValidationError, match="新的修订"):
        revisions.parameter_revision_approve(revision=stale, user=approver)


def test_a_catalog_row_change_and_a_removal_go_through_one_draft(region, users):
    operator, approver = users
    group = DrgGroup.objects.get(region=region, year=2025, code="GB25")
    row = {**revisions._row(DrgGroup, revisions.GROUP_FIELDS, group), "base_points": "95.5"}
    draft = revisions.parameter_revision_draft_row(region=region, table="groups", year=2025, key={"code": "GB25"}, row=row,
                                                   reason="测算调整", user=operator)
    coefficient = Coefficient.objects.filter(institution__region=region, year=2025).select_related("institution").first()
    draft = revisions.parameter_revision_draft_row(
        region=region, table="coefficients", year=2025, key={"institution": coefficient.institution.code, "drg_code": coefficient.drg_code},
        row=None, reason="测算调整；取消个别系数", user=operator,
    )
    assert ParameterRevision.objects.filter(status=RevisionStatus.DRAFT).count() == 1
    tables = sorted(table for table, *_ in revisions.parameter_revision_changes(revision=draft))
    assert tables == ["coefficients", "groups"]
    group.refresh_from_db()
    assert group.base_points != D("95.5") and Coefficient.objects.filter(pk=coefficient.pk).exists()

    revisions.parameter_revision_approve(revision=draft, user=approver)
    group.refresh_from_db()
    assert group.base_points == D("95.5000") and not Coefficient.objects.filter(pk=coefficient.pk).exists()
    history = group.history.first()
    assert history.history_user == approver and "测算调整" in history.history_change_reason


def test_institution_attributes_change_by_revision_and_institutions_cannot_be_dropped(region, users):
    operator, approver = users
    values = revisions.parameter_values_in_force(region=region, kind=ParameterKind.INSTITUTIONS, year=None)
    with pytest.raises(ValidationError, match="不能删除"):
        revisions.parameter_revision_draft(region=region, kind=ParameterKind.INSTITUTIONS, year=None, reason="x", user=operator,
                                           values={"institutions": values["institutions"][1:]})
    h1 = next(row for row in values["institutions"] if row["code"] == "H1")
    draft = revisions.parameter_revision_draft_row(region=region, table="institutions", year=None, key={"code": "H1"},
                                                   row={**h1, "level": 2, "coefficient": "1.2"}, reason="等级复核", user=operator)
    assert draft.year is None and Institution.objects.get(region=region, code="H1").level == int(h1["level"])
    revisions.parameter_revision_approve(revision=draft, user=approver)
    institution = Institution.objects.get(region=region, code="H1")
    assert (institution.level, institution.coefficient) == (2, D("1.2000"))


def test_a_run_after_an_approved_revision_uses_it_and_an_older_run_stays_explained_by_its_own(region, users):
    operator, approver = users
    before = services.clearing_run_start(region=region, fund="employee", year=2025, month=1, user=operator)
    used_before = {rev.kind: rev for rev in before.parameter_revisions.all()}
    assert set(used_before) == {ParameterKind.SCHEME, ParameterKind.CATALOG, ParameterKind.INSTITUTIONS}
    assert before.parameters["revisions"]["scheme"] == {"id": used_before["scheme"].pk, "revision": used_before["scheme"].revision}

    draft = revisions.parameter_revision_draft(region=region, kind=ParameterKind.SCHEME, year=2025,
                                               values=scheme_with(region, prepay_ratio="0.90"), reason="预付比例调整", user=operator)
    pending = services.clearing_run_start(region=region, fund="employee", year=2025, month=1, user=operator)
    assert pending.parameters["scheme"]["prepay_ratio"] == "0.950000"  # a draft changes nothing
    revisions.parameter_revision_approve(revision=draft, user=approver)
    after = services.clearing_run_start(region=region, fund="employee", year=2025, month=1, user=operator)

    used_after = {rev.kind: rev for rev in after.parameter_revisions.all()}
    assert used_after["scheme"] == draft and used_after["catalog"] == used_before["catalog"]
    assert after.parameters["scheme"]["prepay_ratio"] == "0.900000" and after.fingerprint != before.fingerprint
    assert pending.fingerprint == before.fingerprint
    lines_before = {l.institution.code: l for l in before.lines.select_related("institution")}
    lines_after = {l.institution.code: l for l in after.lines.select_related("institution")}
    for code, line in lines_after.items():
        assert line.due == lines_before[code].due  # the same due, prepaid at the new ratio
        assert line.prepaid_to_date == r2(Fraction(line.due_exact) * Fraction(90, 100))
        assert lines_before[code].prepaid_to_date == r2(Fraction(line.due_exact) * Fraction(95, 100))
        assert line.prepaid_to_date < lines_before[code].prepaid_to_date

    # the older run: its recorded revision still holds the values it used
    before.refresh_from_db()
    old_scheme = before.parameter_revisions.get(kind=ParameterKind.SCHEME)
    assert old_scheme.values["prepay_ratio"] == "0.950000" == before.parameters["scheme"]["prepay_ratio"]
    assert old_scheme.values["high_outlier_tiers"] == before.parameters["scheme"]["high_outlier_tiers"]


def test_values_written_around_the_revisions_are_recorded_before_a_run_uses_them(region, users):
    first = services.clearing_run_start(region=region, fund="employee", year=2025, user=users[0])
    Institution.objects.filter(region=region, code="H2").update(coefficient=D("1.5"))
    second = services.clearing_run_start(region=region, fund="employee", year=2025, user=users[0])
    old = first.parameter_revisions.get(kind=ParameterKind.INSTITUTIONS)
    new = second.parameter_revisions.get(kind=ParameterKind.INSTITUTIONS)
    assert new.revision == old.revision + 1 and new.decided_by == system_user() and "未经修订流程" in new.reason
    assert next(r for r in new.values["institutions"] if r["code"] == "H2")["coefficient"] == "1.5000"
    assert first.fingerprint != second.fingerprint


def test_a_run_for_a_year_without_a_scheme_is_a_clear_command_error_and_leaves_no_run(region):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="没有 2026 年的支付方案"):
        call_command("clear", "--region", "331083", "--fund", "employee", "--year", "2026", stdout=open("/dev/null", "w"))
    assert not ClearingRun.objects.filter(year=2026).exists()


def test_reloading_the_same_bundle_records_no_revision_and_a_changed_scheme_one_approved_by_the_system(region, worked_bundle, tmp_path):
    import json
    import shutil

    first = {(r.kind, r.year): r for r in ParameterRevision.objects.filter(region=region)}
    assert set(first) == {("scheme", 2025), ("catalog", 2025), ("institutions", None)}
    assert all(r.status == RevisionStatus.APPROVED and r.decided_by == system_user() and "bundle" in r.reason for r in first.values())
    assert first[("scheme", 2025)].values == revisions.parameter_values_in_force(region=region, kind="scheme", year=2025)

    call_command("load_bundle", str(worked_bundle), stdout=open("/dev/null", "w"))
    assert ParameterRevision.objects.filter(region=region).count() == 3

    changed = tmp_path / "bundle"
    shutil.copytree(worked_bundle, changed)
    params = json.loads((changed / "params.json").read_text(encoding="utf-8"))
    params["scheme"]["prepay_ratio"] = "0.9"
    (changed / "params.json").write_text(json.dumps(params, ensure_ascii=False), encoding="utf-8")
    call_command("load_bundle", str(changed), stdout=open("/dev/null", "w"))
    scheme = ParameterRevision.objects.filter(region=region, kind="scheme").order_by("-revision").first()
    assert scheme.revision == 2 and scheme.based_on == first[("scheme", 2025)] and scheme.decided_by == system_user()
    assert scheme.values["prepay_ratio"] == "0.900000" and ParameterRevision.objects.filter(region=region).count() == 4


def test_failed_runs_are_acknowledged_with_a_note(region, users, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "_results_write", broken)
    with pytest.raises(RuntimeError):
        services.clearing_run_start(region=region, fund="employee", year=2025, user=users[0])
    run = ClearingRun.objects.get(status="failed")
    with pytest.raises(ValidationError):
        services.clearing_run_acknowledge(run=run, user=users[0], note=" ")
    acknowledged = services.clearing_run_acknowledge(run=run, user=users[0], note="磁盘已扩容，已重新发起")
    assert acknowledged.acknowledged_by == users[0] and acknowledged.acknowledgement_note == "磁盘已扩容，已重新发起"
    with pytest.raises(ValidationError, match="已于"):
        services.clearing_run_acknowledge(run=run, user=users[1], note="again")


def test_control_characters_and_surrogates_in_revision_text_are_refused(region, users):
    values = revisions.parameter_values_in_force(region=region, kind=ParameterKind.CATALOG, year=2025)
    values["groups"][0] = {**values["groups"][0], "name": "病组\x00"}
    with pytest.raises(ValidationError, match="控制字符"):
        revisions.parameter_revision_draft(region=region, kind=ParameterKind.CATALOG, year=2025, values=values, reason="x", user=users[0])
    with pytest.raises(ValidationError, match="不允许的字符"):
        revisions.parameter_revision_draft(region=region, kind=ParameterKind.SCHEME, year=2025, values=scheme_with(region),
                                           reason="x\ud800", user=users[0])
    with pytest.raises(ValidationError):
        revisions.parameter_revision_draft(region=region, kind=ParameterKind.SCHEME, year=2025, user=users[0], reason="x",
                                           values=scheme_with(region, prepay_ratio="=1+1", unknown_key=1))
    assert not ParameterRevision.objects.filter(status=RevisionStatus.DRAFT).exists()
