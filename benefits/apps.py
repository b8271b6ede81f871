from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BenefitsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "benefits"
    verbose_name = _("门诊特殊病种 三重保障")

    def ready(self) -> None:
        from benefits import receivers  # noqa: F401  (re-settlement when cases change)
