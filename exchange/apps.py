from django.apps import AppConfig


class ExchangeConfig(AppConfig):
    """The bulk file door of EXCHANGE.md: bundles in, clearing and incentive files out."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "exchange"
