"""The JSON shapes of deployments, of the seed's POST /deploy body and of a rollback."""

from __future__ import annotations

from rest_framework import serializers

from deployments_app.models import Deployment, target_validator
from models_app.models import name_validator, version_validator
from registry_site.fields import (
    JSONObjectField,
    RegistryModelSerializer,
    StrictCharField,
    StrictFieldsMixin,
    StrictTextField,
)


class DeploymentSerializer(RegistryModelSerializer):
    """A deployment of a version to a target, and its rollback."""

    model_name = serializers.CharField(source="model.name", read_only=True)
    version = serializers.CharField(source="model_version.version", read_only=True)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "model_name",
            "version",
            "model_version_id",
            "deployment_target",
            "deployment_status",
            "deployed_at",
            "deployed_by",
            "deployment_config",
            "rollback_at",
            "rollback_reason",
        ]
        read_only_fields = fields


class DeployRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    """The seed's POST /deploy body."""

    # It names a version rather than being one: its fields carry the model fields' validators by name.

    model_name = StrictCharField(max_length=128, validators=[name_validator])
    version = StrictCharField(max_length=64, validators=[version_validator])
    deployment_target = StrictCharField(max_length=64, validators=[target_validator])
    deployed_by = StrictCharField(max_length=150, required=False, allow_blank=True, default="")
    deployment_config = JSONObjectField(required=False, help_text="Defaults to the version's own deployment_config.")


class RollbackRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    reason = StrictTextField(max_length=10_000, required=False, allow_blank=True, default="")


class RollbackResponseSerializer(serializers.Serializer):
    rolled_back = DeploymentSerializer()
    restored = DeploymentSerializer(allow_null=True, help_text="Now active again; null when the target is empty.")
    detail = serializers.CharField()
