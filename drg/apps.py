from django.apps import AppConfig


class DrgConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "drg"
