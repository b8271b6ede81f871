"""One reader for the process environment. Settings call it; nothing else reads os.environ.

A variable that is required and missing, or that cannot be cast, stops start-up with a message
naming the variable: a misconfigured deployment fails fast instead of running on a guess.
"""
from __future__ import annotations

import os
from typing import Any, Callable

_MISSING = object()


class ImproperlyConfiguredEnv(RuntimeError):
    pass


def _to_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def env(name: str, default: Any = _MISSING, cast: Callable[[str], Any] = str) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        if default is _MISSING:
            raise ImproperlyConfiguredEnv(f"environment variable {name} is required")
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise ImproperlyConfiguredEnv(f"environment variable {name}: {exc}") from exc


def env_bool(name: str, default: bool | object = _MISSING) -> bool:
    return env(name, default, _to_bool)


def env_list(name: str, default: list[str] | object = _MISSING) -> list[str]:
    return env(name, default, lambda raw: [item.strip() for item in raw.split(",") if item.strip()])
