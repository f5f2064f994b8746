from django.apps import AppConfig


class RegistrySiteConfig(AppConfig):
    """The site itself: who may call the API (tokens, roles) and what they did (the audit trail)."""

    name = "registry_site"
    verbose_name = "Access and audit"

    def ready(self) -> None:
        from registry_site import checks, schema  # noqa: F401  (register the system checks, the token scheme)
