"""Demo staff: one user per bureau role, so that the demo database opens in the admin (make serve-demo).

Each run of `make demo` makes fresh random passwords for them and prints them at the end; the demo
database is a throw-away SQLite file under var/, never a production database."""
from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

DEMO_USERS = (
    ("operator", "olga", "经办"),
    ("approver", "alan", "审核"),
    ("auditor", "audrey", "审计"),
)


def demo_users_create() -> list[tuple[str, str, str, str]]:
    """(role, Chinese role name, username, password) for each demo user, created or reset."""
    users = []
    for role, username, role_name in DEMO_USERS:
        password = secrets.token_urlsafe(9)
        user, _created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = True
        user.is_active = True
        user.set_password(password)
        user.save()
        user.groups.set([Group.objects.get(name=role)])
        users.append((role, role_name, username, password))
    return users
