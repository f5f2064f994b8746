"""Reads of the deployment history that more than one front door shares."""

from __future__ import annotations

from deployments_app.models import Deployment
from registry_site.errors import NotFound


def deployment_not_found(pk: int) -> NotFound:
    return NotFound(f"Deployment {pk} not found.")


def get_deployment(pk: int) -> Deployment:
    try:
        return Deployment.objects.select_related("model", "model_version").get(pk=pk)
    except Deployment.DoesNotExist:
        raise deployment_not_found(pk) from None
