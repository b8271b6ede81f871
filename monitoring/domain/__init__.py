"""Pure monitoring calculations (MONITORING.md): indicators, screening rules, evaluation scores.

No Django, DRF or Celery here (import-linter): the services read a run's valued cases into the
frame described in ``cases.py`` and hand it in.
"""
