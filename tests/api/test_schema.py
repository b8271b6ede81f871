"""The OpenAPI document and the offline docs page; a schema-driven fuzz test (schemathesis) that
sends generated requests, valid and invalid, to every operation and finds no 5xx — each also with
NUL bytes and lone surrogates in every string."""
from __future__ import annotations

import json
import os
from urllib.parse import quote, urlencode

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error

from drg.services import credential_issue
from tests.api.conftest import stored_case


def test_the_schema_describes_every_v1_endpoint(db):
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    assert {"/api/v1/cases/", "/api/v1/cases/csv/", "/api/v1/cases/{case_no}/valuation/", "/api/v1/statements/",
            "/api/v1/special-reviews/", "/api/v1/correction-requests/", "/api/v1/itemized-claims/",
            "/api/v1/incentives/screenings/", "/api/v1/incentives/payout-lines/"} <= paths
    assert all(p.startswith("/api/v1/") for p in paths)
    assert schema["components"]["securitySchemes"]["ApiKey"]["in"] == "header"
    submit = schema["paths"]["/api/v1/cases/"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["schema"]["type"] == "array"
    assert {"200", "400", "409", "413", "422"} <= set(submit["responses"])


def test_the_schema_describes_the_binding_standing_of_statement_lines(db):
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    statement = schema["components"]["schemas"]["Statement"]["properties"]
    assert {"standing", "supersedes", "superseded_by", "settled_before"} <= set(statement)
    standing = statement["standing"]
    ref = standing.get("$ref") or standing["allOf"][0]["$ref"]
    choices = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["enum"]
    assert set(choices) == {"binding", "superseded", "draft"}
    listing = schema["paths"]["/api/v1/statements/"]["get"]
    assert "include" in {p["name"] for p in listing["parameters"]}
    assert "superseded" in {p["name"]: p for p in listing["parameters"]}["status"]["schema"]["enum"]


def test_the_docs_page_is_served(db):
    response = APIClient().get("/api/docs/")

    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def _load_schema():
    """The generated OpenAPI document (drf-spectacular, no HTTP), served by the Django WSGI app."""
    from drf_spectacular.generators import SchemaGenerator

    from config.wsgi import application

    document = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = application
    return loaded


@pytest.fixture
def keep_connection():
    """schemathesis calls the WSGI app directly, whose request signals would close the test's
    database connection (and with it the test transaction on PostgreSQL); the Django test client
    disconnects them the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_key(h1, h2, keep_connection):
    stored_case(h1, "c01")
    stored_case(h2, "c01")
    return credential_issue(institution=h1, name="fuzz", user=None)[1]


schema = _load_schema()


# Bounded: 10 generated requests per operation, derandomized, so the whole fuzz stays well under a
# minute. FUZZ_DEEP=1 adds schemathesis' coverage phase (boundary and negative values for every
# parameter; slower, it found the CSV carriage-return 500 that is now a 400).
_PHASES = [Phase.explicit, Phase.generate] if os.environ.get("FUZZ_DEEP") else [Phase.generate]


@schema.parametrize()
@settings(max_examples=10, deadline=None, derandomize=True, phases=_PHASES, suppress_health_check=list(HealthCheck))
def test_generated_requests_never_cause_a_server_error(case, fuzz_key):
    response = case.call(headers={"Authorization": f"Api-Key {fuzz_key}"})

    case.validate_response(response, checks=[not_a_server_error])

    # The same request again with NUL appended to every string, then a lone surrogate (in JSON
    # bodies: a URL or a CSV text cannot carry one), which PostgreSQL cannot store. Sent with the
    # Django test client: schemathesis itself cannot encode a lone surrogate.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {fuzz_key}")
    media_type = case.media_type or ""
    for suffix in HOSTILE_SUFFIXES:
        path = case.operation.path.format(
            **{name: quote(_poisoned(str(value), "\x00"), safe="") for name, value in (case.path_parameters or {}).items()}
        )
        query = urlencode({name: _poisoned(str(value), "\x00") for name, value in (case.query or {}).items()})
        url = f"{path}?{query}" if query else path
        if media_type.endswith("json") and case.body is not None:
            data, content_type = json.dumps(_poisoned(case.body, suffix), default=str).encode("ascii"), media_type
        elif media_type == "text/csv" and isinstance(case.body, str):
            data, content_type = (case.body + "\x00").encode("utf-8"), media_type
        else:
            data, content_type = b"", "application/json"
        response = client.generic(case.method, url, data, content_type=content_type)
        # the test client reconnects the request signals that keep_connection took off
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        assert response.status_code < 500, (case.method, url, suffix, response.content[:500])


HOSTILE_SUFFIXES = ("\x00", "\ud800")


def _poisoned(value, suffix: str):
    """``value`` with ``suffix`` appended to every string in it, keys included."""
    if isinstance(value, str):
        return value + suffix
    if isinstance(value, dict):
        return {_poisoned(k, suffix): _poisoned(v, suffix) for k, v in value.items()}
    if isinstance(value, list):
        return [_poisoned(v, suffix) for v in value]
    return value
