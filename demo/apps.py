from django.apps import AppConfig


class DemoConfig(AppConfig):
    """`make demo` (a synthetic county's year) and `make bench` (the production path measured)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"
