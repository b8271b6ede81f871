"""Settlement's door to Celery: the services queue work here, the tasks (settlement/tasks.py) call the
services back.

The tasks import the services and the services import this module, so this module imports the
tasks late, in exactly one place (``_tasks``; pyproject.toml's acyclic contract names that import).
Nothing else in settlement imports settlement.tasks.
"""
from __future__ import annotations

from celery import chord
from django.db import transaction


def _tasks():
    from settlement import tasks  # the one late import (see the module docstring)

    return tasks


def clearing_run_enqueue(*, run_id: int, chunks: int | None) -> None:
    """Queue the run's task once the current transaction commits (the worker must see the run)."""
    tasks = _tasks()
    transaction.on_commit(lambda: tasks.clearing_run_task.apply_async(kwargs={"run_id": run_id, "chunks": chunks}))


def clearing_run_chunks_dispatch(*, run_id: int, layout: list[dict], reduce_id: str) -> None:
    """Value the chunks of `layout` as a Celery chord, then reduce (task id `reduce_id`); a failing
    chunk or reduce marks the run failed. Eager Celery (tests, demo): in this process and
    transaction, chunk after chunk, then the reduce; otherwise once the transaction commits (the
    workers must see the run running)."""
    tasks = _tasks()
    header = [
        tasks.clearing_run_value_chunk.s(run_id=run_id, chunk_no=entry["chunk"], institution_ids=entry["institutions"])
        for entry in layout
    ]
    body = tasks.clearing_run_reduce.s(run_id=run_id).set(task_id=reduce_id)
    body.link_error(tasks.clearing_run_chunks_failed.s(run_id=run_id))
    if tasks.clearing_run_reduce.app.conf.task_always_eager:
        chord(header)(body)
    else:
        transaction.on_commit(lambda: chord(header)(body))
