from django.apps import AppConfig


class BusinessesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "businesses"

    def ready(self) -> None:
        from businesses.config_version import signals_connect

        signals_connect()
