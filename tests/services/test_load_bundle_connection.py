"""load_bundle on PostgreSQL when its database connection dies mid-load (as when the server restarts):
its own backend is terminated with pg_terminate_backend while it writes. The command exits non-zero
with one line on stderr, no traceback, and nothing is stored."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from drg.models import Case, Institution, Region
from tests.conftest import require_service

pytestmark = [pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
APP_NAME = "drg-load-bundle-under-test"


def _terminate_when_writing(deadline: float) -> bool:
    """Terminate the loader's backend once it has begun to write (its first INSERT or COPY)."""
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND state = 'active' "
                "AND (query ILIKE 'INSERT%%' OR query ILIKE 'COPY%%' OR query ILIKE 'UPDATE%%')",
                [APP_NAME],
            )
            pids = [row[0] for row in cursor.fetchall()]
            if pids:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pids[0]])
                return True
        time.sleep(0.02)
    return False


def test_a_terminated_connection_mid_load_is_one_line_and_stores_nothing(transactional_db, tmp_path):
    require_service(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")
    bundle = tmp_path / "bundle"
    call_command("generate_bundle", "--cases", "60000", "--seed", "7", "--out", str(bundle), stdout=io.StringIO())
    settings = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}",
        "PGAPPNAME": APP_NAME,  # libpq names the loader's connection, so only its backend is terminated
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.pop("DRG_SERVICE_TEST_DB", None)

    loader = subprocess.Popen(
        [sys.executable, "manage.py", "load_bundle", str(bundle)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        terminated = _terminate_when_writing(time.monotonic() + 60)
        stdout, stderr = loader.communicate(timeout=60)
    finally:
        if loader.poll() is None:
            loader.kill()

    assert terminated, f"the loader never wrote: {stdout}{stderr}"
    assert loader.returncode != 0
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    assert "数据库连接中断" in lines[0] and "nothing was loaded" in lines[0]
    assert Region.objects.count() == Institution.objects.count() == Case.objects.count() == 0
