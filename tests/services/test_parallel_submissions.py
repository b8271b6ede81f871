"""20 parallel first submissions of the same record (PostgreSQL, real concurrent transactions): one
is created (201), the others answer 200 like a resubmission, never a 500 on the unique constraint."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from drg.models import Institution, Region, SpecialReview
from incentives.models import Screening
from settlement.models import ItemizedClaim
from tests.api.conftest import client_for, stored_case
from tests.conftest import require_service

pytestmark = [pytest.mark.services]

PARALLEL = 20


def post_in_parallel(h1, url: str, payload: dict) -> list[int]:
    clients = [client_for(h1) for _ in range(PARALLEL)]
    barrier = threading.Barrier(PARALLEL)

    def submit(client) -> int:
        try:
            barrier.wait(timeout=30)
            return client.post(url, payload, format="json").status_code
        finally:
            connections.close_all()  # this thread's connection

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return list(pool.map(submit, clients))


@pytest.fixture
def h1(transactional_db):
    require_service(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")
    region = Region.objects.create(code="331083", name="玉环市")
    return Institution.objects.create(region=region, code="H1", name="人民医院", level=3, category="general")


@pytest.mark.parametrize(
    "url, payload, model",
    [
        ("/api/v1/special-reviews/", {"case_no": "c01", "reason": "罕见病", "requested_cost": "12000.00"}, SpecialReview),
        (
            "/api/v1/itemized-claims/",
            {"claim_no": "T001", "fund": "employee", "month": "2025-01", "patient_id": "P1", "claimed_amount": "1500.00"},
            ItemizedClaim,
        ),
        ("/api/v1/incentives/screenings/", {"patient_id": "P1", "screening_date": "2025-03-01", "fee": "200.00"}, Screening),
    ],
)
def test_parallel_first_submissions_create_one_record_and_answer_200_to_the_rest(h1, url, payload, model):
    stored_case(h1, "c01")
    statuses = post_in_parallel(h1, url, payload)
    assert sorted(statuses) == [200] * (PARALLEL - 1) + [201]
    assert model.objects.count() == 1
    if hasattr(model, "history"):
        assert model.history.count() == 1  # one creation recorded; the identical others changed nothing
