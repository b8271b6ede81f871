from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DrgConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "drg"
    verbose_name = _("病组与病例")

    def ready(self) -> None:
        # pyarrow is installed for the stored case-result blocks (docs/storage.md); pandas would then
        # back its text columns with Arrow. The bulk paths are measured and tuned with Python-backed
        # text (the same values either way), so that stays the storage of every process.
        import pandas as pd

        pd.set_option("mode.string_storage", "python")

        # Approving a correction request (common.reviews.review_approve) applies it to its case.
        from common.reviews import review_approval_effect_register
        from drg.services import correction_request_approved

        review_approval_effect_register(label="drg.correctionrequest", effect=correction_request_approved)

        # a new region gets its table of cases on PostgreSQL (drg.partitions)
        from django.db.models.signals import post_delete, post_save

        from drg.models import Region
        from drg.partitions import region_deleted, region_saved

        post_save.connect(region_saved, sender=Region, dispatch_uid="drg.partitions.region_saved")
        post_delete.connect(region_deleted, sender=Region, dispatch_uid="drg.partitions.region_deleted")
