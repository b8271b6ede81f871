"""API keys: issue, authenticate, revoke, last use; per-institution throttling."""
from __future__ import annotations

import copy

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from drg.models import InstitutionCredential
from drg.services import credential_hash, credential_issue, credential_revoke
from tests.api.conftest import client_for


def test_issued_key_is_stored_only_as_a_hash(h1):
    credential, raw_key = credential_issue(institution=h1, name="HIS", user=None)

    assert raw_key.startswith(credential.prefix + ".")
    assert raw_key not in credential.key_hash
    assert credential.key_hash == credential_hash(raw_key)
    assert InstitutionCredential.objects.filter(key_hash=credential_hash(raw_key)).count() == 1


def test_a_valid_key_identifies_the_institution_and_records_its_last_use(h1):
    credential, raw_key = credential_issue(institution=h1, name="HIS", user=None)
    client = APIClient()

    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Api-Key {raw_key}")

    assert response.status_code == 200
    assert response.json()["institution_code"] == "H1"
    credential.refresh_from_db()
    assert credential.last_used_at is not None


@pytest.mark.parametrize(
    "header",
    [None, "Api-Key nonsense", "Api-Key abc.def", "Bearer whatever", "Api-Key ", "Api-Key " + "x" * 300],
)
def test_requests_without_a_valid_key_answer_401(h1, header):
    client = APIClient()
    kwargs = {"HTTP_AUTHORIZATION": header} if header is not None else {}

    response = client.get("/api/v1/cases/", **kwargs)

    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] in {"not_authenticated", "authentication_failed"}
    assert response["WWW-Authenticate"] == "Api-Key"


def test_a_wrong_secret_with_a_real_prefix_answers_401(h1):
    credential, raw_key = credential_issue(institution=h1, name="HIS", user=None)

    response = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Api-Key {credential.prefix}.wrong-secret")

    assert response.status_code == 401


def test_a_revoked_key_answers_401(h1):
    credential, raw_key = credential_issue(institution=h1, name="HIS", user=None)
    credential_revoke(credential=credential, user=None)

    response = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Api-Key {raw_key}")

    assert response.status_code == 401
    assert response.json()["errors"][0]["message"] == "该接口密钥已被吊销。"


def test_api_errors_follow_accept_language_in_one_language(h1):
    """Chinese by default; with Accept-Language: en every message of the answer is English, DRF's and ours alike."""
    missing_zh = APIClient().get("/api/v1/me/")
    wrong_zh = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION="Api-Key abc.def")
    missing_en = APIClient().get("/api/v1/me/", HTTP_ACCEPT_LANGUAGE="en")
    wrong_en = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION="Api-Key abc.def", HTTP_ACCEPT_LANGUAGE="en")

    assert missing_zh.json()["errors"][0]["message"] == "身份认证信息未提供。"
    assert wrong_zh.json()["errors"][0]["message"] == "接口密钥无效。"
    assert missing_en.json()["errors"][0]["message"] == "Authentication credentials were not provided."
    assert wrong_en.json()["errors"][0]["message"] == "Invalid API key."


def test_revoking_twice_keeps_the_first_revocation_time(h1):
    credential, _ = credential_issue(institution=h1, name="HIS", user=None)
    first = credential_revoke(credential=credential, user=None).revoked_at

    again = credential_revoke(credential=credential, user=None).revoked_at

    assert again == first


def _rates(rate: str) -> dict:
    config = copy.deepcopy(django_settings.REST_FRAMEWORK)
    config["DEFAULT_THROTTLE_RATES"] = {"institution": rate}
    return config


def test_throttling_is_per_institution_across_its_keys(settings, h1, h2):
    settings.REST_FRAMEWORK = _rates("3/min")
    first_key, second_key, other = client_for(h1), client_for(h1), client_for(h2)

    answers = [first_key.get("/api/v1/me/").status_code for _ in range(2)] + [second_key.get("/api/v1/me/").status_code]
    throttled = second_key.get("/api/v1/me/")

    assert answers == [200, 200, 200]
    assert throttled.status_code == 429
    assert throttled.json()["errors"][0]["code"] == "throttled"
    assert "Retry-After" in throttled
    assert other.get("/api/v1/me/").status_code == 200
