"""Settings for the test suite (pinned in pyproject's pytest configuration)."""
from config.env import env
from config.settings import *  # noqa: F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"institution": "100000/min"}  # noqa: F405

# CI's Celery workers (started by .ci/run) use this database by name; the serial `-m services`
# pass of `make test` creates it, so a test's committed rows are what the workers read.
_service_db = env("DRG_SERVICE_TEST_DB", "")  # noqa: F405
if _service_db:
    DATABASES["default"]["TEST"] = {"NAME": _service_db}  # noqa: F405
