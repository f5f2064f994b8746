"""The JSON shapes of deployments, of the seed's POST /deploy body and of a rollback."""

from __future__ import annotations

from django.db import models
from rest_framework import serializers

from deployments_app.models import Approval, Deployment, PromotionPolicy, Target, target_validator
from models_app.models import name_validator, version_validator
from registry_site.fields import (
    JSONObjectField,
    JSONValueField,
    RegistryModelSerializer,
    StrictBooleanField,
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
    dry_run = StrictBooleanField(
        required=False,
        default=False,
        help_text="true: evaluate the target's promotion policies and answer 200 with the result; deploy nothing.",
    )


class PolicyCheckSerializer(serializers.Serializer):
    """One rule of a promotion policy, evaluated (deployments_app.policies.RuleResult)."""

    rule = serializers.CharField(
        help_text="status, min_metric, max_regression, format_check, file_verified, approvals or soak."
    )
    metric = serializers.CharField(required=False, help_text="The metric a min_metric or max_regression rule names.")
    passed = serializers.BooleanField()
    expected = serializers.JSONField(allow_null=True, help_text="What the rule requires.")
    seen = serializers.JSONField(allow_null=True, help_text="What the version has.")
    detail = serializers.CharField(help_text="The result in a sentence.")
    policy = serializers.ChoiceField(
        choices=["target", "model"], help_text="The target's own policy, or the model's policy on that target."
    )


class DeployCheckSerializer(serializers.Serializer):
    """POST /deploy with dry_run: what a deploy would meet. Nothing is written."""

    dry_run = serializers.BooleanField(default=True)
    allowed = serializers.BooleanField(help_text="Would the deploy go ahead?")
    already_active = serializers.BooleanField(help_text="The version is the active one there: nothing would change.")
    model_name = serializers.CharField()
    version = serializers.CharField()
    deployment_target = serializers.CharField()
    checks = PolicyCheckSerializer(many=True, help_text="Every rule of the policies that apply; empty when none.")


class PolicyRefusedSerializer(serializers.Serializer):
    """The 409 of a deploy that breaks a promotion policy."""

    detail = serializers.CharField()
    allowed = serializers.BooleanField(required=False, help_text="false; present when a policy refused the deploy.")
    checks = PolicyCheckSerializer(
        many=True, required=False, help_text="Every rule evaluated, the failed ones with passed false."
    )


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


class PolicySerializer(RegistryModelSerializer):
    """A promotion policy: PUT replaces it whole (a rule left out is off), GET shows it."""

    serializer_field_mapping = {
        **RegistryModelSerializer.serializer_field_mapping,
        models.PositiveIntegerField: StrictIntegerField,
        models.PositiveSmallIntegerField: StrictIntegerField,
    }
    target = serializers.CharField(source="target.name", read_only=True)
    model_name = serializers.SerializerMethodField(help_text="The model whose own policy this is; null: every model.")
    soak_target = StrictCharField(
        required=False,
        allow_null=True,
        max_length=64,
        validators=[target_validator],
        help_text="A target's name: the version must have been active there for soak_hours (null: no soak rule).",
    )
    min_metrics = JSONValueField(required=False, help_text=PromotionPolicy._meta.get_field("min_metrics").help_text)
    max_regressions = JSONValueField(
        required=False, help_text=PromotionPolicy._meta.get_field("max_regressions").help_text
    )

    class Meta:
        model = PromotionPolicy
        fields = ["target", "model_name", *PromotionPolicy.RULES, "updated_at"]
        read_only_fields = ["target", "model_name", "updated_at"]
        extra_kwargs = {
            name: {"required": False}
            for name in (
                "required_status",
                "require_format_check",
                "require_verified_file",
                "approvals_required",
                "soak_hours",
            )
        }

    def get_model_name(self, policy: PromotionPolicy) -> str | None:
        return policy.model.name if policy.model_id else None

    def to_representation(self, instance: PromotionPolicy) -> dict:
        data = super().to_representation(instance)
        data["soak_target"] = instance.soak_target.name if instance.soak_target_id else None
        return data


class ApprovalSerializer(RegistryModelSerializer):
    model_name = serializers.CharField(source="version.model.name", read_only=True)
    version = serializers.CharField(source="version.version", read_only=True)
    target = serializers.CharField(source="target.name", read_only=True)
    user = serializers.CharField(source="user.get_username", read_only=True)

    class Meta:
        model = Approval
        fields = ["id", "model_name", "version", "target", "user", "comment", "created_at"]
        read_only_fields = fields


class ApprovalRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    target = StrictCharField(max_length=64, validators=[target_validator])
    comment = StrictTextField(max_length=2000, required=False, allow_blank=True, default="")
