"""Review queues in the admin: approve / reject one record or many (intermediate form), maker-checker,
decided records read-only, correction requests applied to the case as a recorded correction."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from drg.models import CaseCorrection, CorrectionRequest, SpecialReview
from settlement.models import Evaluation, ItemizedClaim, PointAdjustment
from tests.integration.admin_helpers import make_case, make_institution, make_user, small_region

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool():
    region = small_region()
    institution = make_institution(region)
    return region, institution


def messages_of(response) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


def test_an_operator_enters_a_special_review_and_an_approver_approves_it_with_a_cost(client, pool):
    region, institution = pool
    case = make_case(institution)
    operator, approver = make_user("olga", "operator"), make_user("alan", "approver")
    client.force_login(operator)
    added = client.post(reverse("admin:drg_specialreview_add"), {
        "institution": institution.pk, "case": case.pk, "requested_cost": "82000.00", "reason": "罕见病", "documents": "[]",
    })
    assert added.status_code == 302, added.content.decode()[:3000]
    review = SpecialReview.objects.get()

    client.force_login(approver)
    page = client.get(reverse("admin:drg_specialreview_change", args=[review.pk])).content.decode()
    assert reverse("admin:drg_specialreview_decide", args=[review.pk, "approved"]) in page
    form = client.get(reverse("admin:drg_specialreview_decide", args=[review.pk, "approved"]))
    assert form.status_code == 200 and "核定费用" in form.content.decode()
    done = client.post(reverse("admin:drg_specialreview_decide", args=[review.pk, "approved"]), {"amount": "80000.00", "reason": "expert panel", "apply": "1"})

    assert done.status_code == 302
    review.refresh_from_db()
    assert (review.status, review.approved_cost, review.decided_by) == ("approved", Decimal("80000.00"), approver)
    latest = review.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (approver, "expert panel")
    assert review.history.earliest().history_user == operator
    # decided: read-only for everyone
    client.force_login(operator)
    assert client.post(reverse("admin:drg_specialreview_change", args=[review.pk]), {"requested_cost": "1"}).status_code == 403


def test_nobody_approves_a_record_they_created(client, pool):
    region, institution = pool
    both = make_user("dora", "operator")
    both.groups.add(Group.objects.get(name="approver"))
    client.force_login(both)
    client.post(reverse("admin:settlement_itemizedclaim_add"), {
        "institution": institution.pk, "claim_no": "IC-1", "fund": "employee", "month": "2025-03-15", "patient_id": "P9", "claimed_amount": "1200.00",
    })
    claim = ItemizedClaim.objects.get()
    assert (claim.month, claim.region) == (dt.date(2025, 3, 1), region)

    page = client.get(reverse("admin:settlement_itemizedclaim_change", args=[claim.pk])).content.decode()
    assert "经办与审核须为不同人员" in page
    response = client.post(reverse("admin:settlement_itemizedclaim_decide", args=[claim.pk, "approved"]), {"apply": "1"}, follow=True)

    assert "经办与审核须为不同人员" in messages_of(response)
    claim.refresh_from_db()
    assert claim.status == "submitted"


def test_itemized_claims_are_approved_in_bulk_through_an_intermediate_form(client, pool):
    region, institution = pool
    claims = [
        ItemizedClaim.objects.create(region=region, institution=institution, claim_no=f"IC-{i}", fund="employee", month=dt.date(2025, 2, 1),
                                     patient_id=f"P{i}", claimed_amount=Decimal("1000.00") + i)
        for i in range(3)
    ]
    approver = make_user("alan", "approver")
    client.force_login(approver)
    url = reverse("admin:settlement_itemizedclaim_changelist")
    ids = [c.pk for c in claims]

    intermediate = client.post(url, {"action": "approve_selected", "_selected_action": ids})
    html = intermediate.content.decode()
    assert intermediate.status_code == 200
    assert "核定金额" in html and 'name="apply"' in html and html.count('name="_selected_action"') == 3
    done = client.post(url, {"action": "approve_selected", "_selected_action": ids, "index": "0", "apply": "1", "amount": "", "reason": ""}, follow=True)

    assert "已处理 3 条记录" in messages_of(done)
    assert sorted(ItemizedClaim.objects.values_list("status", "approved_amount")) == [
        ("approved", Decimal("1000.00")), ("approved", Decimal("1001.00")), ("approved", Decimal("1002.00")),
    ]
    assert all(c.decided_by == approver for c in ItemizedClaim.objects.all())


def test_a_bulk_rejection_needs_a_reason_and_keeps_it(client, pool):
    region, institution = pool
    claim = ItemizedClaim.objects.create(region=region, institution=institution, claim_no="IC-9", fund="employee", month=dt.date(2025, 2, 1),
                                         patient_id="P1", claimed_amount=Decimal("500.00"))
    client.force_login(make_user("alan", "approver"))
    url = reverse("admin:settlement_itemizedclaim_changelist")

    without = client.post(url, {"action": "reject_selected", "_selected_action": [claim.pk], "index": "0", "apply": "1", "reason": ""})
    assert without.status_code == 200 and 'class="errorlist' in without.content.decode()
    claim.refresh_from_db()
    assert claim.status == "submitted"

    client.post(url, {"action": "reject_selected", "_selected_action": [claim.pk], "index": "0", "apply": "1", "reason": "not a special disease"})
    claim.refresh_from_db()
    assert (claim.status, claim.rejection_reason) == ("rejected", "not a special disease")
    assert claim.history.latest().history_change_reason == "rejected: not a special disease"


def test_point_adjustments_and_evaluations_are_approved_and_rejected(client, pool):
    region, institution = pool
    operator, approver = make_user("olga", "operator"), make_user("alan", "approver")
    client.force_login(operator)
    client.post(reverse("admin:settlement_pointadjustment_add"), {
        "institution": institution.pk, "fund": "employee", "year": 2025, "drg_code": "GB25", "multiple": "1", "reason": "分解住院",
    })
    client.post(reverse("admin:settlement_pointadjustment_add"), {
        "institution": institution.pk, "fund": "employee", "year": 2025, "drg_code": "GB25", "multiple": "2", "reason": "高套点数",
    })
    client.post(reverse("admin:settlement_evaluation_add"), {"institution": institution.pk, "fund": "employee", "year": 2025, "score": "92.5"})
    first, second = PointAdjustment.objects.order_by("multiple")
    evaluation = Evaluation.objects.get()
    assert first.created_by == operator and evaluation.created_by == operator
    listing = client.get(reverse("admin:settlement_pointadjustment_changelist")).content.decode()
    assert "80.0000" in listing and "160.0000" in listing  # multiple × base points of GB25

    client.force_login(approver)
    client.post(reverse("admin:settlement_pointadjustment_decide", args=[first.pk, "approved"]), {"apply": "1"})
    client.post(reverse("admin:settlement_pointadjustment_decide", args=[second.pk, "rejected"]), {"apply": "1", "reason": "evidence missing"})
    client.post(reverse("admin:settlement_evaluation_changelist"), {"action": "approve_selected", "_selected_action": [evaluation.pk], "index": "0", "apply": "1"})

    first.refresh_from_db(), second.refresh_from_db(), evaluation.refresh_from_db()
    assert (first.status, first.decided_by) == ("approved", approver)
    assert second.status == "rejected" and second.history.latest().history_change_reason == "rejected: evidence missing"
    assert (evaluation.status, evaluation.decided_by) == ("approved", approver)


def test_an_approved_correction_request_is_applied_to_the_case_as_a_recorded_correction(client, pool):
    region, institution = pool
    case = make_case(institution, total_cost=Decimal("9000.00"))
    operator, approver = make_user("olga", "operator"), make_user("alan", "approver")
    client.force_login(operator)
    case_page = client.get(reverse("admin:drg_case_change", args=[case.pk])).content.decode()
    assert "申请更正" in case_page
    client.post(reverse("admin:drg_correctionrequest_add"), {
        "institution": institution.pk, "case": case.pk, "p_total_cost": "9500.00", "p_discharge_status": "transfer",
        "reason": "billing error found after month close",
    })
    request = CorrectionRequest.objects.get()

    client.force_login(approver)
    client.post(reverse("admin:drg_correctionrequest_decide", args=[request.pk, "approved"]), {"apply": "1", "reason": "checked"})

    request.refresh_from_db()
    case.refresh_from_db()
    correction = CaseCorrection.objects.get()
    assert request.status == "approved"
    assert (case.total_cost, case.discharge_status) == (Decimal("9500.00"), "transfer")
    assert (correction.source, correction.changed_by) == ("admin", approver)
    assert correction.before == {"total_cost": "9000.00", "discharge_status": "normal"}
    assert correction.after == {"total_cost": "9500.00", "discharge_status": "transfer"}
    assert "billing error" in correction.reason
    assert "9000.00 → 9500.00" in client.get(reverse("admin:drg_casecorrection_changelist")).content.decode()


def test_the_correction_form_shows_each_case_field_with_its_current_value_and_no_errors_when_empty(client, pool):
    region, institution = pool
    case = make_case(institution, total_cost=Decimal("9000.00"))
    client.force_login(make_user("olga", "operator"))

    empty = client.get(reverse("admin:drg_correctionrequest_add") + f"?case={case.pk}&institution={institution.pk}").content.decode()
    same = client.post(reverse("admin:drg_correctionrequest_add"), {
        "institution": institution.pk, "case": case.pk, "p_total_cost": "9000.00", "reason": "r",
    })
    nothing = client.post(reverse("admin:drg_correctionrequest_add"), {"institution": institution.pk, "case": case.pk, "reason": "r"})

    assert 'name="p_total_cost"' in empty and 'name="p_discharge_status"' in empty and 'name="proposed"' not in empty
    assert "当前：<b>9,000.00</b>" in empty and "当前：<b>正常出院</b>" in empty
    assert "errorlist" not in empty and "null" not in empty
    assert "与当前值相同" in " ".join(same.context["adminform"].form.errors.get("p_total_cost", []))
    assert "请至少填写一项要更正的字段" in " ".join(nothing.context["adminform"].form.non_field_errors())
    assert not CorrectionRequest.objects.exists()


def test_a_correction_request_with_a_bad_value_is_refused_and_stays_open(client, pool):
    region, institution = pool
    case = make_case(institution)
    request = CorrectionRequest.objects.create(institution=institution, case=case, proposed={"drg_code": "XX99", "case_no": "other"}, reason="x")
    client.force_login(make_user("alan", "approver"))

    response = client.post(reverse("admin:drg_correctionrequest_decide", args=[request.pk, "approved"]), {"apply": "1"}, follow=True)

    assert "cannot be corrected: case_no" in messages_of(response)
    request.refresh_from_db()
    assert request.status == "submitted" and not CaseCorrection.objects.exists()


LATE_ROW = {"p_fund": "employee", "p_patient_id": "P031", "p_admission_date": "2025-02-10", "p_discharge_date": "2025-02-18", "p_drg_code": "GB25", "p_total_cost": "7600", "p_self_pay": "1500", "p_discharge_status": "normal"}


def test_an_operator_enters_a_late_case_which_the_approver_sees_in_full_and_approves(client, pool):
    from drg.models import Case
    from settlement.models import ClearingRun

    region, institution = pool
    ClearingRun.objects.create(region=region, fund="employee", year=2025, month=2, kind="monthly", status="finalized")
    operator, approver = make_user("olga", "operator"), make_user("alan", "approver")
    client.force_login(operator)
    added = client.post(reverse("admin:drg_correctionrequest_add"), {
        "institution": institution.pk, "kind": "late_case", "case_no": "c31", **LATE_ROW, "reason": "found in the audit",
    })
    assert added.status_code == 302, added.content.decode()[:3000]
    request = CorrectionRequest.objects.get()
    assert (request.kind, request.case, request.case_no) == ("late_case", None, "c31")
    assert request.proposed["total_cost"] == "7600.00" and request.proposed["tcm_treatment"] is False  # stored normalised

    client.force_login(approver)
    listed = client.get(reverse("admin:drg_correctionrequest_changelist"), {"kind": "late_case"}).content.decode()
    page = client.get(reverse("admin:drg_correctionrequest_change", args=[request.pk])).content.decode()
    done = client.post(reverse("admin:drg_correctionrequest_decide", args=[request.pk, "approved"]), {"apply": "1", "reason": "checked"})

    assert "c31 <i>（补报病例，尚未入库）</i>" in listed
    assert "<b>补报病例 c31</b>" in page and "<b>总费用</b>：7600.00" in page and "<b>出院日期</b>：2025-02-18" in page
    assert done.status_code == 302
    case = Case.objects.get(case_no="c31")
    assert (case.institution, case.region, case.total_cost) == (institution, region, Decimal("7600.00"))
    correction = CaseCorrection.objects.get()
    assert (correction.case, correction.source, correction.changed_by, correction.before) == (case, "admin", approver, {})
    assert correction.after["case_no"] == "c31" and correction.after["self_pay"] == "1500.00"
    request.refresh_from_db()
    assert (request.status, request.case) == ("approved", case)


@pytest.mark.parametrize(
    "values, field, message",
    [
        ({"kind": "late_case", "case_no": "c31"}, "case_no", "an open period (no month of it is finalized)"),
        ({"kind": "late_case", "case_no": ""}, "case_no", "补报病例须填写病案号"),
        ({"kind": "late_case", "case_no": "c31", "p_patient_id": ""}, "p_patient_id", "required value is empty"),
        ({"kind": "change", "case_no": ""}, "case", "更正须指定要更正的已入库病例"),
    ],
)
def test_the_admin_form_checks_a_late_case_like_the_hospital_api(client, pool, values, field, message):
    region, institution = pool
    client.force_login(make_user("olga", "operator"))

    response = client.post(reverse("admin:drg_correctionrequest_add"), {
        "institution": institution.pk, **LATE_ROW, "reason": "r", **values,
    })

    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors.get(field, [])), response.context["adminform"].form.errors
    assert not CorrectionRequest.objects.exists()


def test_cases_are_read_only_and_searchable_by_case_no_and_patient(client, pool):
    region, institution = pool
    case = make_case(institution, case_no="c77", patient_id="P-ABC")
    make_case(institution, case_no="c78", patient_id="P-XYZ", discharge_date=dt.date(2025, 5, 2), admission_date=dt.date(2025, 5, 1))
    client.force_login(make_user("olga", "operator"))
    url = reverse("admin:drg_case_changelist")

    by_case = client.get(url, {"q": "c77"}).content.decode()
    by_patient = client.get(url, {"q": "P-XYZ"}).content.decode()
    by_month = client.get(url, {"discharge_year": "2025", "discharge_month": "05"}).content.decode()

    assert "c77" in by_case and "c78" not in by_case
    assert "c78" in by_patient and "c77" not in by_patient
    assert "c78" in by_month and "c77" not in by_month
    assert client.post(reverse("admin:drg_case_change", args=[case.pk]), {"total_cost": "1"}).status_code == 403
    assert client.get(reverse("admin:drg_case_add")).status_code == 403


def test_incentive_inputs_are_decided_by_the_approver_role(client, pool):
    from incentives.models import ChronicEnrollment

    region, institution = pool
    enrollment = ChronicEnrollment.objects.create(institution=institution, patient_id="P1", disease="diabetes", enrolled_on=dt.date(2025, 4, 1))
    client.force_login(make_user("alan", "approver"))

    client.post(reverse("admin:incentives_chronicenrollment_changelist"), {
        "action": "approve_selected", "_selected_action": [enrollment.pk], "index": "0", "apply": "1",
    })

    enrollment.refresh_from_db()
    assert enrollment.status == "approved"
    assert client.get(reverse("admin:incentives_chronicenrollment_history", args=[enrollment.pk])).status_code == 200
