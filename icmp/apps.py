from django.apps import AppConfig


class IcmpConfig(AppConfig):
    """The project package as an app: its system checks and templates."""

    name = "icmp"
    verbose_name = "ICMP"

    def ready(self) -> None:
        from icmp import startup  # noqa: F401 (registers the system checks)
