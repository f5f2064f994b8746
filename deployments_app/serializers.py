"""The JSON shapes of deployments, of the seed's POST /deploy body and of a rollback."""

from __future__ import annotations

from typing import Any

from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deployments_app import alerts, experiments
from deployments_app.models import (
    BUCKETS,
    MAX_VARIANTS,
    MIN_VARIANTS,
    Alert,
    AlertRule,
    AlertState,
    Approval,
    Deployment,
    Experiment,
    MetricKind,
    PromotionPolicy,
    Target,
    Variant,
    target_validator,
)
from models_app.models import name_validator, version_validator
from registry_site.fields import (
    JSONObjectField,
    JSONValueField,
    RegistryModelSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictFieldsMixin,
    StrictFloatField,
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


class SplitEntrySerializer(serializers.Serializer):
    variant = serializers.CharField()
    version = serializers.CharField()
    weight = serializers.IntegerField(help_text="Basis points.")
    is_control = serializers.BooleanField()


class LiveSplitSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.CharField()
    split = SplitEntrySerializer(many=True)


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
    experiment = LiveSplitSerializer(
        allow_null=True, help_text="The running or paused experiment's split of the target's traffic; null when none."
    )


# --- A/B tests (issue #11) ------------------------------------------------------------------------
def _flat_messages(where: str, detail: Any) -> list[str]:
    """A nested error (a list of objects' errors) as sentences naming where: "batches[1].exposures: …"."""
    if isinstance(detail, dict):
        return [
            message
            for key, value in detail.items()
            for message in _flat_messages(where if key == "non_field_errors" else f"{where}{_step(key)}", value)
        ]
    if isinstance(detail, list) and not all(isinstance(item, str) for item in detail):
        return [message for index, item in enumerate(detail) for message in _flat_messages(f"{where}[{index}]", item)]
    return [f"{where}: {item}" for item in (detail if isinstance(detail, list) else [detail])]


def _step(key: Any) -> str:
    return f"[{key}]" if isinstance(key, int) or str(key).isdigit() else f".{key}"


class FlatErrorsMixin(StrictFieldsMixin):
    """Errors of a list of objects (or of an object's values) flattened to the API's shape, {field: [text]},
    each text naming its place ("variants[1].weight: …")."""

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict):
                raise
            flat = {
                field: detail
                if isinstance(detail, list) and all(isinstance(item, str) for item in detail)
                else _flat_messages(field, detail)
                for field, detail in exc.detail.items()
            }
            raise serializers.ValidationError(flat) from None


class VariantRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    version = StrictCharField(max_length=64, validators=[version_validator])
    weight = StrictIntegerField(min_value=0, max_value=BUCKETS, help_text="Basis points: 10000 is all traffic.")
    name = StrictCharField(max_length=64, required=False, help_text="Defaults to the version.")
    is_control = StrictBooleanField(required=False, default=False)


class ExperimentRequestSerializer(FlatErrorsMixin, serializers.Serializer):
    """POST /models/{m}/targets/{t}/experiments: a draft experiment."""

    name = StrictCharField(max_length=128)
    variants = serializers.ListField(
        child=VariantRequestSerializer(),
        min_length=MIN_VARIANTS,
        max_length=MAX_VARIANTS,
        help_text="2 to 10 variants, exactly one the control; weights sum to 10000.",
    )
    metric = StrictCharField(max_length=64, required=False, default="conversion")
    metric_kind = serializers.ChoiceField(choices=MetricKind.choices, required=False, default=MetricKind.RATE)
    higher_is_better = StrictBooleanField(required=False, default=True)
    min_samples = StrictIntegerField(min_value=1, max_value=2**31 - 1, required=False, default=100)
    salt = StrictCharField(max_length=64, required=False, help_text="Defaults to 16 random hexadecimal digits.")


class VariantSerializer(serializers.ModelSerializer):
    version = serializers.CharField(source="version.version", read_only=True)

    class Meta:
        model = Variant
        fields = ["id", "name", "version", "weight", "is_control"]
        read_only_fields = fields


class BucketRangesSerializer(serializers.Serializer):
    variant = serializers.CharField()
    version = serializers.CharField()
    ranges = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2),
        help_text="[start, end) bucket ranges.",
    )


class ExperimentConfigurationSerializer(serializers.Serializer):
    salt = serializers.CharField()
    buckets = serializers.IntegerField()
    hash = serializers.CharField(help_text="The bucket of a unit `key`, as Python.")
    ranges = BucketRangesSerializer(many=True, help_text="Each variant's buckets, in variant id order.")


class ExperimentSerializer(serializers.ModelSerializer):
    model_name = serializers.CharField(source="model.name", read_only=True)
    target = serializers.CharField(source="target.name", read_only=True)
    variants = VariantSerializer(many=True, read_only=True)
    configuration = serializers.SerializerMethodField()

    class Meta:
        model = Experiment
        fields = [
            "id",
            "model_name",
            "target",
            "name",
            "state",
            "metric",
            "metric_kind",
            "higher_is_better",
            "min_samples",
            "created_at",
            "created_by",
            "started_at",
            "stopped_at",
            "variants",
            "configuration",
            "decision",
        ]
        read_only_fields = fields

    @extend_schema_field(ExperimentConfigurationSerializer)
    def get_configuration(self, obj: Experiment) -> dict[str, Any]:
        return experiments.configuration(obj)


class WeightsRequestSerializer(FlatErrorsMixin, serializers.Serializer):
    weights = serializers.DictField(
        child=StrictIntegerField(min_value=0, max_value=BUCKETS),
        help_text='Basis points by variant name, e.g. {"control": 8000, "candidate": 2000}; others keep theirs.',
    )


class ResultBatchSerializer(StrictFieldsMixin, serializers.Serializer):
    """One batch: exposures and conversions (rate metric) or count, sum and sum_sq (mean metric)."""

    variant = StrictCharField(max_length=64)
    observed_at = serializers.DateTimeField(required=False)
    exposures = StrictIntegerField(min_value=0, required=False)
    conversions = StrictIntegerField(min_value=0, required=False)
    count = StrictIntegerField(min_value=0, required=False)
    sum = StrictFloatField(required=False)
    sum_sq = StrictFloatField(min_value=0, required=False)


class ResultsRequestSerializer(FlatErrorsMixin, serializers.Serializer):
    batches = serializers.ListField(child=ResultBatchSerializer(), min_length=1, max_length=1000)


class ResultsAcceptedSerializer(serializers.Serializer):
    recorded = serializers.IntegerField()


class ConcludeRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    winner = StrictCharField(max_length=64, help_text="The winning variant's name.")
    make_default = StrictBooleanField(required=False, default=False)


class EstimateSerializer(serializers.Serializer):
    value = serializers.FloatField()
    ci_low = serializers.FloatField()
    ci_high = serializers.FloatField()


class ComparisonSerializer(serializers.Serializer):
    difference = serializers.FloatField(help_text="Treatment minus control.")
    ci_low = serializers.FloatField()
    ci_high = serializers.FloatField()
    relative_lift = serializers.FloatField(allow_null=True, help_text="difference / control; null if control is 0.")
    p_value = serializers.FloatField()
    statistic = serializers.FloatField(help_text="z (rate) or Welch's t (mean).")
    significant = serializers.BooleanField()


class VariantResultSerializer(serializers.Serializer):
    variant = serializers.CharField()
    version = serializers.CharField()
    is_control = serializers.BooleanField()
    weight = serializers.IntegerField()
    units = serializers.IntegerField(help_text="Exposures (rate) or count (mean).")
    batches = serializers.IntegerField()
    conversions = serializers.IntegerField(required=False)
    sum = serializers.FloatField(required=False)
    sum_sq = serializers.FloatField(required=False)
    estimate = EstimateSerializer(allow_null=True)
    comparison = ComparisonSerializer(allow_null=True, help_text="Against the control; null for the control.")


class SampleRatioSerializer(serializers.Serializer):
    chi_square = serializers.FloatField()
    p_value = serializers.FloatField()
    mismatch = serializers.BooleanField()


class ExperimentResultsSerializer(serializers.Serializer):
    experiment = serializers.IntegerField()
    state = serializers.CharField()
    metric = serializers.CharField()
    metric_kind = serializers.CharField()
    higher_is_better = serializers.BooleanField()
    confidence = serializers.FloatField()
    alpha = serializers.FloatField(help_text="0.05 divided by the number of treatments (Bonferroni).")
    min_samples = serializers.IntegerField()
    variants = VariantResultSerializer(many=True)
    sample_ratio = SampleRatioSerializer()
    verdict = serializers.CharField()
    suggested_winner = serializers.CharField(allow_null=True)


class AssignmentSerializer(serializers.Serializer):
    experiment = serializers.IntegerField(allow_null=True, help_text="Null: no experiment, the active version.")
    state = serializers.CharField(allow_null=True)
    variant = serializers.CharField(allow_null=True)
    bucket = serializers.IntegerField(allow_null=True)
    version = serializers.CharField()
    file_url = serializers.CharField()
    sha256 = serializers.CharField()


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


class AlertRuleSerializer(RegistryModelSerializer):
    """An alert rule: POST gives it whole (name, metric, condition and a window at least), PATCH any of it;
    the rules between fields are deployments_app.alerts'."""

    serializer_field_mapping = {
        **RegistryModelSerializer.serializer_field_mapping,
        models.PositiveIntegerField: StrictIntegerField,
    }
    model_name = serializers.CharField(source="model.name", read_only=True)
    target = StrictCharField(
        required=False,
        allow_null=True,
        max_length=64,
        validators=[target_validator],
        help_text="A target's name: the rule watches the version active there and an experiment's variants "
        "there, and may act there. Null: every version of the model that receives points.",
    )
    firing = serializers.SerializerMethodField(help_text="How many of its alerts are firing now.")

    class Meta:
        model = AlertRule
        fields = ["id", "model_name", *alerts.RULE_FIELDS, "firing", "created_at", "created_by", "updated_at"]
        read_only_fields = ["id", "model_name", "firing", "created_at", "created_by", "updated_at"]
        extra_kwargs = {
            name: {"required": False}
            for name in alerts.RULE_FIELDS
            if name not in ("name", "metric", "condition", "target")
        }

    def get_firing(self, rule: AlertRule) -> int:
        counted = getattr(rule, "firing_count", None)  # annotated by the lists (alerts.alert_rules)
        return counted if counted is not None else rule.alerts.filter(state=AlertState.FIRING).count()

    def to_representation(self, instance: AlertRule) -> dict:
        data = super().to_representation(instance)
        data["target"] = instance.target.name if instance.target_id else None
        return data


class AlertSerializer(RegistryModelSerializer):
    """An alert: one episode of a rule holding for a version, firing until it stops holding."""

    model_name = serializers.CharField(source="rule.model.name", read_only=True)
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    target = serializers.SerializerMethodField()
    severity = serializers.CharField(source="rule.severity", read_only=True)
    version = serializers.CharField(source="version.version", read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "model_name",
            "rule",
            "rule_name",
            "target",
            "severity",
            "version",
            "state",
            "value",
            "reason",
            "started_at",
            "resolved_at",
            "resolved_value",
            "action_taken",
            "acknowledged_by",
            "acknowledged_at",
        ]
        read_only_fields = fields

    def get_target(self, alert: Alert) -> str | None:
        return alert.rule.target.name if alert.rule.target_id else None
