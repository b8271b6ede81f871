"""Signals drg sends to the apps above it (which drg cannot import).

Only derived data hangs on them: a receiver recomputes what is a function of the stored cases.
"""
from django.dispatch import Signal

#: Sent once the transaction that stored new or changed cases has committed. Keyword arguments:
#: ``region_id`` and ``keys``, a set of (patient_id, fund, discharge year) the change touches
#: (before and after values of a changed case), and ``source`` (a ChangeSource value).
cases_stored = Signal()
