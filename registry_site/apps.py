from django.apps import AppConfig


class RegistrySiteConfig(AppConfig):
    """The registry's core: who may call the API (tokens, roles) and what they did (the audit trail),
    and what every process prepares when it starts (registry_site.startup)."""

    name = "registry_site"
    verbose_name = "Access and audit"

    def ready(self) -> None:
        from registry_site import checks, schema, startup  # noqa: F401  (checks and the token scheme register)

        startup.prepare()
