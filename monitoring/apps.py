from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MonitoringConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "monitoring"
    verbose_name = _("运行监测与智能监管")

    def ready(self) -> None:
        from monitoring import receivers

        receivers.connect()
