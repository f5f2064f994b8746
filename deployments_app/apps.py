from django.apps import AppConfig


class DeploymentsAppConfig(AppConfig):
    name = "deployments_app"
    verbose_name = "Deployments"
