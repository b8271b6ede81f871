import os
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = Path(os.environ.get("DRG_SPEC_DIR") or ROOT.parent / "shared" / "spec")
WORKED_EXAMPLE = SPEC_DIR / "worked-example"
IN_CI = os.environ.get("CI", "").lower() == "true"

# Property tests explore new examples on every local run; under CI they are derandomized (the same
# examples each run), so a submission's verdict never depends on the luck of the draw.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if IN_CI:
    hypothesis_settings.load_profile("ci")


@pytest.fixture
def worked_bundle() -> Path:
    path = WORKED_EXAMPLE / "bundle"
    if not path.exists():
        pytest.fail(f"the spec's worked example is missing at {path}")
    return path


@pytest.fixture
def worked_expected() -> Path:
    return WORKED_EXAMPLE / "expected"


def require_service(available: bool, what: str) -> None:
    """Skip a service test outside CI when the service is absent; under CI=true it must run."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but is not available")
    pytest.skip(f"{what} not available (set CI=true to require it)")


@pytest.fixture(autouse=True)
def _celery_eager_unless_services(request):
    """Every test but the `services` ones runs Celery tasks in-process, even under CI where
    CELERY_BROKER_URL points to the real Redis: only the services pass talks to real workers (which
    read their own test database)."""
    if request.node.get_closest_marker("services"):
        yield
        return
    from config.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = saved
