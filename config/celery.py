import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("drg_settlement")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Beat schedules live in code (synced into django-celery-beat's tables by the database scheduler).
app.conf.beat_schedule = {
    "monthly-provisional-clearing": {
        "task": "settlement.tasks.schedule_monthly_clearings",
        "schedule": crontab(minute=0, hour=2, day_of_month=5),
    },
    "fail-stalled-clearing-runs": {
        "task": "settlement.tasks.fail_stalled_runs",
        "schedule": crontab(minute="*"),
    },
    "purge-idempotency-records": {
        "task": "drg.tasks.purge_idempotency_records",
        "schedule": crontab(minute=30, hour=4),
    },
    "annual-clearing-offer": {
        "task": "settlement.tasks.offer_annual_clearings",
        "schedule": crontab(minute=0, hour=3, day_of_month=15, month_of_year="1-6"),
    },
}
