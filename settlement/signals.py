"""Signals settlement sends to the apps above it.

Only derived data hangs on them (forecasts, indicators): a receiver must never change money records.
The apps below cannot import the apps above (import-linter), so this is how a finalized run reaches
planning and monitoring.
"""
from django.dispatch import Signal

#: Sent once the transaction that finalized a clearing run has committed. Keyword argument: ``run``.
run_finalized = Signal()
