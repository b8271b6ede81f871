"""The system user that batch commands act as (e.g. `clear --finalize`, bundle-approved budgets)."""
from django.contrib.auth import get_user_model

SYSTEM_USERNAME = "system"


def system_user():
    user, created = get_user_model().objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"is_active": False, "first_name": "batch", "last_name": "system"}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user
