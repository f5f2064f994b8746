"""What a model's or a version's webhook event says about its object: its fields as the API shows them
(GET /models/{m}, GET /models/{m}/versions/{v}), read inside the change's transaction
(registry_site.webhooks.enqueue). A deleted object is gone: the event then carries what the audit
trail recorded."""

from __future__ import annotations

from typing import Any

from models_app import selectors
from models_app.serializers import ModelVersionSerializer, RegisteredModelSerializer
from registry_site.models import AuditEvent
from registry_site.webhooks import describes


@describes("model")
def describe_model(event: AuditEvent) -> dict[str, Any] | None:
    model = selectors.models_with_default().filter(name=event.model_name).first()
    return dict(RegisteredModelSerializer(model).data) if model is not None else None


@describes("version")
def describe_version(event: AuditEvent) -> dict[str, Any] | None:
    version_string = event.object_repr[len(event.model_name) + 1 :]  # "<model>:<version>"
    version = (
        selectors.versions_with_files_and_targets().filter(model__name=event.model_name, version=version_string).first()
    )
    return dict(ModelVersionSerializer(version).data) if version is not None else None
