"""What a deployment's, a target's, an experiment's or an alert's webhook event says about its object: its
fields as the API shows them (GET /deployments/{id}, GET /targets/{name}, GET /experiments/{id},
GET /alerts/{id}), read inside the change's transaction (registry_site.webhooks.enqueue)."""

from __future__ import annotations

from typing import Any

from deployments_app import alerts, experiments
from deployments_app.models import Deployment, Target
from deployments_app.serializers import AlertSerializer, DeploymentSerializer, ExperimentSerializer, TargetSerializer
from registry_site.models import AuditEvent
from registry_site.webhooks import describes


@describes("deployment")
def describe_deployment(event: AuditEvent) -> dict[str, Any] | None:
    deployment = (
        Deployment.objects.select_related("model", "model_version").filter(pk=event.changes.get("deployment")).first()
    )
    return dict(DeploymentSerializer(deployment).data) if deployment is not None else None


@describes("target")
def describe_target(event: AuditEvent) -> dict[str, Any] | None:
    target = Target.objects.filter(name=event.object_repr).first()
    return dict(TargetSerializer(target).data) if target is not None else None


@describes("experiment")
def describe_experiment(event: AuditEvent) -> dict[str, Any] | None:
    experiment = experiments.experiments().filter(pk=event.changes.get("experiment")).first()
    return dict(ExperimentSerializer(experiment).data) if experiment is not None else None


@describes("alert")
def describe_alert(event: AuditEvent) -> dict[str, Any] | None:
    alert = alerts.alerts().filter(pk=event.changes.get("alert")).first()
    return dict(AlertSerializer(alert).data) if alert is not None else None
