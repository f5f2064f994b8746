"""The JSON shapes of deployments, of the seed's POST /deploy body and of a rollback."""

from __future__ import annotations

from django.db import models
from rest_framework import serializers

from deployments_app.models import Deployment, Target, target_validator
from models_app.models import name_validator, version_validator
from registry_site.fields import (
    JSONObjectField,
    RegistryModelSerializer,
    StrictCharField,
    StrictFieldsMixin,
    StrictIntegerField,
    StrictTextField,
)


class DeploymentSerializer(RegistryModelSerializer):
    """A deployment of a version to a target, and its rollback."""

    model_name = serializers.CharField(source="model.name", read_only=True)
    version = serializers.CharField(source="model_version.version", read_only=True)
    # The target's name, as the seed's text column always held it (no query for the target's row).
    deployment_target = serializers.CharField(source="deployment_target_id", read_only=True)

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


class TargetSerializer(RegistryModelSerializer):
    """A deployment target. `name` is unique ignoring case and never changes; `protected` targets need
    the deployer role."""

    serializer_field_mapping = {
        **RegistryModelSerializer.serializer_field_mapping,
        models.PositiveIntegerField: StrictIntegerField,
    }

    class Meta:
        model = Target
        fields = ["name", "description", "protected", "display_order"]
        extra_kwargs = {"description": {"required": False}, "protected": {"required": False}}


class TargetChangeSerializer(TargetSerializer):
    """PATCH /targets/{name}: the name is in the URL and never changes (deployments refer to it)."""

    immutable_fields = {"name": "A target's name cannot be changed: deployments refer to it."}

    class Meta(TargetSerializer.Meta):
        fields = ["description", "protected", "display_order"]
        extra_kwargs = {name: {"required": False} for name in fields}


class ModelTargetSerializer(serializers.Serializer):
    """One target as one model sees it: what is active there, and the latest of its history there."""

    target = serializers.CharField(source="name")
    description = serializers.CharField()
    protected = serializers.BooleanField()
    active = DeploymentSerializer(allow_null=True, help_text="The active deployment; null when none.")
    history = DeploymentSerializer(
        many=True, help_text="The model's latest deployments on this target, newest first (at most 10)."
    )
    history_url = serializers.CharField(help_text="The whole history: GET /deployments?model=…&target=….")
