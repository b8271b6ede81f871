"""Settlement's door to Celery: the services queue work here, the tasks (settlement/tasks.py) call the
services back.

The tasks import the services and the services import this module, so this module imports the
tasks late, in exactly one place (``_tasks``; pyproject.toml's acyclic contract names that import).
Nothing else in settlement imports settlement.tasks.
"""
from __future__ import annotations

from typing import Callable

from celery import chord
from django.db import transaction
from kombu.exceptions import KombuError


def _tasks():
    from settlement import tasks  # the one late import (see the module docstring)

    return tasks


# What publishing raises when the broker cannot be reached (after the short connection timeout and
# publish retries of config/settings.py): kombu's OperationalError, or a socket/redis error.
BROKER_ERRORS: tuple[type[BaseException], ...] = (KombuError, OSError, ConnectionError, TimeoutError)
try:  # the Redis client's own connection errors, when the broker is Redis
    from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError

    BROKER_ERRORS += (RedisConnectionError, RedisTimeoutError)
except ImportError:  # pragma: no cover - redis is installed with celery[redis]
    pass


class BrokerUnreachable(Exception):
    """A task could not be queued: the broker (or the result backend, which a publish subscribes to)
    cannot be reached. ``cause`` is the connection error."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


def broker_error_of(exc: BaseException) -> BaseException | None:
    """The connection error behind ``exc`` (Celery's result backend wraps it in a RuntimeError), if any."""
    while exc is not None:
        if isinstance(exc, BROKER_ERRORS):
            return exc
        exc = exc.__cause__
    return None


def clearing_run_enqueue(*, run_id: int, chunks: int | None, on_broker_error: Callable[[BaseException], None]) -> None:
    """Queue the run's task once the current transaction commits (the worker must see the run).
    When the broker cannot be reached, ``on_broker_error(exc)`` is called at once (it fails the run,
    so the pool is not blocked, and raises the error the caller shows)."""
    tasks = _tasks()

    def publish() -> None:
        if tasks.clearing_run_task.app.conf.task_always_eager:  # no broker: runs here, errors are the run's own
            tasks.clearing_run_task.apply_async(kwargs={"run_id": run_id, "chunks": chunks})
            return
        try:
            tasks.clearing_run_task.apply_async(kwargs={"run_id": run_id, "chunks": chunks})
        except Exception as exc:
            cause = broker_error_of(exc)
            if cause is None:
                raise
            on_broker_error(cause)
            raise BrokerUnreachable(cause) from exc

    transaction.on_commit(publish)


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
