"""Fixtures for tests that need the real services: PostgreSQL, Redis and running Celery workers."""
from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import require_service


def _redis_up(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture
def celery_workers(transactional_db):
    """Real workers (started by .ci/run) reading this test database; the test's rows are committed."""
    broker = settings.CELERY_BROKER_URL
    require_service(bool(broker) and _redis_up(broker), "a Redis broker (CELERY_BROKER_URL)")
    require_service(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")
    expected_db = os.environ.get("DRG_SERVICE_TEST_DB", "")
    require_service(expected_db and connection.settings_dict["NAME"] == expected_db,
                    f"the workers' test database {expected_db!r} (run with -p no:xdist -m services)")
    from config.celery import app

    replies = app.control.ping(timeout=5.0) or []
    require_service(len(replies) >= 1, "running Celery workers")
    return app, replies
