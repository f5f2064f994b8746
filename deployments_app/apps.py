from django.apps import AppConfig


class DeploymentsAppConfig(AppConfig):
    name = "deployments_app"
    verbose_name = "Deployments"

    def ready(self) -> None:
        from deployments_app import alerts, webhook_events  # noqa: F401  (registers what its webhook events say)
        from models_app.metric_history import points_recorded

        # Alert rules are evaluated when points arrive; models_app knows nothing of them.
        points_recorded.connect(alerts.on_points_recorded, dispatch_uid="deployments_app.alerts")
