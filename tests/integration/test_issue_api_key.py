"""`manage.py issue_api_key`: the raw key alone on stdout's last line, stored hashed, usable at once."""
from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from drg.models import Institution, InstitutionCredential, Region
from drg.services import credential_hash

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_regions():
    yuhuan = Region.objects.create(code="331083", name="玉环市")
    wenling = Region.objects.create(code="331081", name="温岭市")
    h1 = Institution.objects.create(region=yuhuan, code="H1", name="人民医院", level=3, category="general")
    Institution.objects.create(region=wenling, code="H1", name="第一人民医院", level=3, category="general")
    Institution.objects.create(region=yuhuan, code="H2", name="中医院", level=2, category="tcm")
    return h1


def issue(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("issue_api_key", *args, stdout=out)
    return out.getvalue().splitlines()


def test_the_raw_key_is_the_last_line_stored_hashed_and_authenticates(two_regions):
    lines = issue("--institution", "H2", "--name", "HIS production")

    raw_key = lines[-1]
    credential = InstitutionCredential.objects.get()
    assert raw_key.startswith(credential.prefix + ".") and len(raw_key) > 40
    assert credential.key_hash == credential_hash(raw_key) and raw_key not in credential.key_hash
    assert (credential.institution.code, credential.name, credential.created_by.username) == ("H2", "HIS production", "system")
    assert credential.history.get().history_change_reason == "API key issued"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    assert client.get("/api/v1/me/").json()["institution_code"] == "H2"


def test_an_ambiguous_code_needs_the_region(two_regions):
    with pytest.raises(CommandError, match="331081, 331083"):
        issue("--institution", "H1", "--name", "HIS")
    assert InstitutionCredential.objects.count() == 0

    lines = issue("--institution", "H1", "--region", "331083", "--name", "HIS")
    assert InstitutionCredential.objects.get().institution == two_regions
    assert InstitutionCredential.objects.get().prefix in lines[-1]


@pytest.mark.parametrize("args", [("--institution", "H9"), ("--institution", "H2", "--region", "331081")])
def test_an_unknown_institution_is_a_clear_error(two_regions, args):
    with pytest.raises(CommandError, match="未知机构编码"):
        issue(*args, "--name", "HIS")
    assert InstitutionCredential.objects.count() == 0


def test_a_blank_name_is_refused(two_regions):
    with pytest.raises(CommandError, match="--name"):
        issue("--institution", "H2", "--name", "  ")
