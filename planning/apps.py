from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PlanningConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "planning"
    verbose_name = _("测算、模拟与预测")

    def ready(self) -> None:
        from planning import receivers  # noqa: F401  (connects settlement.signals.run_finalized)
