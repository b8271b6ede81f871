from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DrgConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "drg"
    verbose_name = _("病组与病例")

    def ready(self) -> None:
        # Approving a correction request (common.reviews.review_approve) applies it to its case.
        from common.reviews import review_approval_effect_register
        from drg.services import correction_request_approved

        review_approval_effect_register(label="drg.correctionrequest", effect=correction_request_approved)
