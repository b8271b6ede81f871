"""Planning's door to Celery: the services and receivers queue work here, the tasks
(planning/tasks.py) call the services back. The tasks are imported late, in one place (`_tasks`;
pyproject.toml's acyclic contract names that import)."""
from __future__ import annotations

from django.db import transaction


def _tasks():
    from planning import tasks  # the one late import (see the module docstring)

    return tasks


def scenario_enqueue(*, scenario_id: int) -> None:
    """Queue the scenario's run once the current transaction commits (the worker must see it)."""
    tasks = _tasks()
    transaction.on_commit(lambda: tasks.scenario_run_task.delay(scenario_id=scenario_id))


def forecast_enqueue(*, run_id: int) -> None:
    """Queue the forecast of a finalized monthly run (called after the finalization committed)."""
    _tasks().forecast_task.delay(run_id=run_id)


def season_enqueue(*, run_id: int) -> None:
    """Queue the season record of a finalized annual run (the next year's forecasts read it)."""
    _tasks().season_task.delay(run_id=run_id)
