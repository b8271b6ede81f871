"""Production-like settings from the environment: `manage.py check --deploy` is clean, and behind the
TLS proxy every answer carries Strict-Transport-Security. Run in a fresh process each, since settings
are read from the environment once at start-up."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECURE_", "CELERY_", "PYTEST"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings", DEBUG="0", SECRET_KEY="k" * 20 + "-production-like-" + "s3cr3t" * 6,
        ALLOWED_HOSTS="drg.example.org", BEHIND_TLS_PROXY="1", CSRF_TRUSTED_ORIGINS="https://drg.example.org",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", DRG_VAR_DIR=str(tmp_path), LOG_LEVEL="ERROR",
    )
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_production_like_settings(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues (0 silenced)" in result.stdout


def test_check_deploy_names_the_missing_hsts_when_turned_off(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path, SECURE_HSTS_SECONDS="0"))
    assert result.returncode != 0 and "security.W004" in result.stderr + result.stdout


@pytest.mark.parametrize("behind_proxy, expected", [("1", "max-age=31536000; includeSubDomains; preload"), ("0", "None")])
def test_strict_transport_security_is_sent_behind_the_tls_proxy(tmp_path, behind_proxy, expected):
    script = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "response = Client().get('/admin/login/', HTTP_HOST='drg.example.org', HTTP_X_FORWARDED_PROTO='https')\n"
        "print(response.status_code, response.headers.get('Strict-Transport-Security'))\n"
    )
    env = production_env(tmp_path, BEHIND_TLS_PROXY=behind_proxy)
    result = run(["-c", script], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"200 {expected}"
