from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SettlementConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "settlement"
    verbose_name = _("清算")

    def ready(self) -> None:
        # The apps below ask settlement which periods a finalized run froze (drg refuses case changes
        # there); settlement answers without them importing it.
        from drg.selectors import finalized_periods_answered_by
        from settlement.selectors import finalized_through

        finalized_periods_answered_by(finalized_through)
