from django.apps import AppConfig


class DeploymentsAppConfig(AppConfig):
    name = "deployments_app"
    verbose_name = "Deployments"

    def ready(self) -> None:
        from deployments_app import webhook_events  # noqa: F401  (registers what its webhook events say)
