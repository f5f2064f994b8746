from django.apps import AppConfig


class ModelsAppConfig(AppConfig):
    name = "models_app"
    verbose_name = "Models and versions"

    def ready(self) -> None:
        from models_app import webhook_events  # noqa: F401  (registers what its webhook events say)
