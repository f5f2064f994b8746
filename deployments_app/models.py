"""Deployments of model versions to targets (the seed's `model_deployments` table) and their rollbacks."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from models_app.models import SOURCE_PATTERN, ModelVersion, RegisteredModel, VersionStatus
from registry_site.model_fields import RuledJSONField
from registry_site.validators import (
    METRIC_NAME_PATTERN,
    validate_finite,
    validate_json_object,
    validate_metric_minimums,
    validate_one_line,
    validate_regression_rules,
)

target_validator = RegexValidator(
    r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$(?!\n)",
    "Use 1-64 ASCII letters, digits, '_', '-' or '.', not starting with a dot or a dash.",
)


class Target(models.Model):
    """Where a version can be deployed (issue #10): a known name, so `Production` and `production` are
    one target and a typo is refused instead of becoming a new target. A protected target needs the
    deployer role's own permission (registry_site.permissions.may_deploy_to).

    Deployments refer to a target by its name (a foreign key to `name`), which is why a target's name
    never changes once made: the seed's `deployment_target` stays the text it always was."""

    name = models.CharField(max_length=64, unique=True, validators=[target_validator])
    description = models.TextField(blank=True, default="", max_length=2000, validators=[MaxLengthValidator(2000)])
    protected = models.BooleanField(
        default=False, help_text="Deploying here needs the deployer role (deployments_app.deploy_to_production)."
    )
    display_order = models.PositiveIntegerField(
        default=100, help_text="Lists show targets by this number, then by name."
    )

    class Meta:
        db_table = "deployment_targets"
        ordering = ["display_order", "name"]
        constraints = [
            # `unique=True` above is the key deployments refer to; this one makes `Production` the same
            # name as `production`.
            models.UniqueConstraint(
                Lower("name"),
                name="deployment_targets_name_unique_ignoring_case",
                violation_error_message="A target with this name (ignoring case) already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class DeploymentStatus(models.TextChoices):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


class Deployment(models.Model):
    # The model is the version's model, kept on the row so the database itself can enforce "at most one
    # active deployment per model and target" with a partial unique index.
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="deployments")
    # RESTRICT: a version with deployment history cannot be deleted on its own, but deleting its whole
    # model takes the history along (the model's CASCADE reaches these rows too).
    model_version = models.ForeignKey(ModelVersion, on_delete=models.RESTRICT, related_name="deployments")
    # The target's name, in the seed's column: the database refuses a deployment to an unknown target,
    # and a target that has deployments cannot be deleted (PROTECT; deployments_app.services.delete_target
    # says so first, as a 409).
    deployment_target = models.ForeignKey(
        Target, to_field="name", db_column="deployment_target", on_delete=models.PROTECT, related_name="deployments"
    )
    deployed_at = models.DateTimeField(default=timezone.now)
    deployed_by = models.CharField(max_length=150, blank=True, default="")
    deployment_status = models.CharField(
        max_length=16, choices=DeploymentStatus.choices, default=DeploymentStatus.ACTIVE
    )
    deployment_config = RuledJSONField(default=dict, blank=True, validators=[validate_json_object])
    rollback_at = models.DateTimeField(null=True, blank=True)
    rollback_reason = models.TextField(blank=True, default="")

    class Meta:
        db_table = "model_deployments"
        ordering = ["-id"]
        permissions = [
            ("rollback_deployment", "Can roll back a deployment"),
            # The codename is the one the deployer role has held since before targets had a protected flag.
            ("deploy_to_production", "Can deploy to protected targets (such as production)"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "deployment_target"],
                condition=Q(deployment_status="active"),
                name="model_deployments_one_active_per_target",
            ),
            models.CheckConstraint(
                condition=Q(deployment_status__in=DeploymentStatus.values),
                name="model_deployments_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(deployment_status="rolled_back", rollback_at__isnull=False)
                | (~Q(deployment_status="rolled_back") & Q(rollback_at__isnull=True)),
                name="model_deployments_rollback_at_iff_rolled_back",
            ),
        ]
        indexes = [
            models.Index(fields=["model", "deployment_target", "-deployed_at"]),
            # The console's deployment list, newest first, without sorting the whole history (issue #15).
            models.Index(fields=["-deployed_at", "-id"], name="model_deployments_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.model_version} -> {self.deployment_target_id} ({self.deployment_status})"


MAX_APPROVALS_REQUIRED = 10
MAX_SOAK_HOURS = 24 * 365


class PromotionPolicy(models.Model):
    """What a version must meet before it is deployed to `target` (issue #10 §4), evaluated by
    deployments_app.policies.evaluate inside deploy_version, so every front door obeys it.

    A target has at most one policy of its own (`model` null) and at most one per model. A model's policy
    adds to its target's: both are evaluated and every rule of each must pass, so a model's policy can
    only make the target's stricter, never relax it. A rule left at its default (blank status, no
    minimums, False, 0) is not evaluated."""

    # The rules' fields: what PUT .../policy, the admin and set_policy take.
    RULES = (
        "required_status",
        "min_metrics",
        "max_regressions",
        "require_format_check",
        "require_verified_file",
        "approvals_required",
        "soak_target",
        "soak_hours",
    )

    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="policies")
    model = models.ForeignKey(
        RegisteredModel,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="promotion_policies",
        help_text="Empty: the target's own policy, for every model. Set: an extra policy for this model.",
    )
    required_status = models.CharField(
        max_length=16,
        choices=VersionStatus.choices,
        blank=True,
        default="",
        help_text="The status the version must have (e.g. approved); empty: any status.",
    )
    min_metrics = RuledJSONField(
        default=dict,
        blank=True,
        validators=[validate_metric_minimums],
        help_text='Each named metric must be at least this: {"accuracy": 0.9, "auc": 0.85}. The seed\'s five '
        "and the open metrics alike.",
    )
    max_regressions = RuledJSONField(
        default=list,
        blank=True,
        validators=[validate_regression_rules],
        help_text="Not worse than the version active on the target by more than max_drop (absolute): "
        '[{"metric": "auc", "max_drop": 0.01}, {"metric": "latency_ms", "max_drop": 5, "lower_is_better": true}].',
    )
    require_format_check = models.BooleanField(
        default=False, help_text="The file's format check must have passed (not failed, not skipped)."
    )
    require_verified_file = models.BooleanField(
        default=False,
        help_text="The version must have a file whose sha256 the registry computed while storing it.",
    )
    approvals_required = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_APPROVALS_REQUIRED)],
        help_text="Approvals of the version for this target by users other than the one deploying.",
    )
    soak_target = models.ForeignKey(
        Target,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The version must have been active on this target (e.g. staging) for soak_hours.",
    )
    soak_hours = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(MAX_SOAK_HOURS)])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "promotion_policies"
        ordering = ["target__display_order", "target__name", "id"]
        verbose_name_plural = "promotion policies"
        constraints = [
            models.UniqueConstraint(
                fields=["target"],
                condition=Q(model__isnull=True),
                name="promotion_policies_one_per_target",
                violation_error_message="This target has a policy already.",
            ),
            models.UniqueConstraint(
                fields=["target", "model"],
                name="promotion_policies_one_per_target_and_model",
                violation_error_message="This target has a policy for this model already.",
            ),
            models.CheckConstraint(
                condition=Q(required_status="") | Q(required_status__in=VersionStatus.values),
                name="promotion_policies_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(approvals_required__lte=MAX_APPROVALS_REQUIRED),
                name="promotion_policies_approvals_bounded",
            ),
            # A soak rule names both where and how long, or neither.
            models.CheckConstraint(
                condition=Q(soak_target__isnull=True, soak_hours=0)
                | Q(soak_target__isnull=False, soak_hours__gt=0, soak_hours__lte=MAX_SOAK_HOURS),
                name="promotion_policies_soak_complete",
                violation_error_message="Give both soak_target and soak_hours (more than 0), or neither.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.target.name} policy" + (f" for {self.model.name}" if self.model is not None else "")


class Approval(models.Model):
    """A user's approval of a version for a target: what a policy's `approvals_required` counts (never
    the deploying user's own). Recorded by deployments_app.services.approve_version, audited."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="approvals")
    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="version_approvals")
    comment = models.TextField(blank=True, default="", validators=[MaxLengthValidator(2000)])
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "version_approvals"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "target", "user"],
                name="version_approvals_one_per_user",
                violation_error_message="This user has approved this version for this target already.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} for {self.target.name} by {self.user}"


# --- A/B tests (issue #11) ------------------------------------------------------------------------
# Assignment hashes a unit into one of BUCKETS buckets; weights are in basis points of them.
BUCKETS = 10_000
MIN_VARIANTS = 2
MAX_VARIANTS = 10


class ExperimentState(models.TextChoices):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    CONCLUDED = "concluded"


# Running and paused experiments hold their target: a paused one answers its control to everyone and may
# resume, so a second experiment cannot start meanwhile.
LIVE_STATES = (ExperimentState.RUNNING, ExperimentState.PAUSED)


class MetricKind(models.TextChoices):
    RATE = "rate"  # exposures and conversions (a click-through rate)
    MEAN = "mean"  # count, sum and sum of squares (latency, revenue, a score)


def new_salt() -> str:
    return secrets.token_hex(8)


class Experiment(models.Model):
    """An A/B test of a model's versions on one target: its variants split the target's traffic by
    weight, each unit (a user, a request key) hashed with the salt into a fixed bucket
    (deployments_app.experiments.bucket_of)."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="experiments")
    # PROTECT: a target an experiment ran on keeps its name in the experiment's record.
    target = models.ForeignKey(Target, on_delete=models.PROTECT, related_name="experiments")
    name = models.CharField(max_length=128, validators=[validate_one_line])
    state = models.CharField(max_length=16, choices=ExperimentState.choices, default=ExperimentState.DRAFT)
    salt = models.CharField(max_length=64, default=new_salt, validators=[validate_one_line])
    metric = models.CharField(max_length=64, default="conversion", validators=[validate_one_line])
    metric_kind = models.CharField(max_length=8, choices=MetricKind.choices, default=MetricKind.RATE)
    # Whether a higher metric is the better one (a conversion rate) or a lower (latency): the verdict's word.
    higher_is_better = models.BooleanField(default=True)
    # Fewer units than this in any variant: the verdict is "not enough data", whatever the p-value.
    min_samples = models.PositiveIntegerField(default=100)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # When concluded: the winner, whether it became the default, and the results as they were then.
    decision = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "experiments"
        ordering = ["-id"]
        permissions = [
            ("conclude_experiment", "Can conclude an experiment (deploys its winner)"),
            ("report_experiment", "Can report an experiment's results (a serving system)"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "target"],
                condition=Q(state__in=LIVE_STATES),
                name="experiments_one_live_per_model_target",
                violation_error_message="This model already has a running or paused experiment on this target.",
            ),
            models.CheckConstraint(condition=Q(state__in=ExperimentState.values), name="experiments_state_valid"),
            models.CheckConstraint(
                condition=Q(metric_kind__in=MetricKind.values), name="experiments_metric_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"


class Variant(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    # RESTRICT, as a deployment's: a version an experiment tested cannot be deleted on its own.
    version = models.ForeignKey(ModelVersion, on_delete=models.RESTRICT, related_name="variants")
    name = models.CharField(max_length=64, validators=[validate_one_line])
    weight = models.PositiveIntegerField(validators=[MaxValueValidator(BUCKETS)])
    is_control = models.BooleanField(default=False)

    class Meta:
        db_table = "experiment_variants"
        ordering = ["id"]  # the assignment's bucket ranges follow this order: never change it
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="experiment_variants_name_unique"),
            models.UniqueConstraint(fields=["experiment", "version"], name="experiment_variants_version_unique"),
            models.UniqueConstraint(
                fields=["experiment"], condition=Q(is_control=True), name="experiment_variants_one_control"
            ),
            models.CheckConstraint(
                condition=Q(weight__gte=0, weight__lte=BUCKETS), name="experiment_variants_weight_in_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.weight / 100:g}%)"


class ResultBatch(models.Model):
    """What a serving system observed for one variant over some period. A rate metric reports exposures
    and conversions; a mean metric a count (stored as exposures), a sum and a sum of squares."""

    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="results")
    observed_at = models.DateTimeField(default=timezone.now)
    exposures = models.PositiveBigIntegerField()
    conversions = models.PositiveBigIntegerField(null=True, blank=True)
    total = models.FloatField(null=True, blank=True)
    total_sq = models.FloatField(null=True, blank=True)

    class Meta:
        db_table = "experiment_results"
        ordering = ["observed_at", "id"]
        indexes = [models.Index(fields=["variant", "observed_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(conversions__isnull=True) | Q(conversions__lte=F("exposures")),
                name="experiment_results_conversions_at_most_exposures",
            ),
            models.CheckConstraint(
                condition=Q(total_sq__isnull=True) | Q(total_sq__gte=0), name="experiment_results_sum_sq_non_negative"
            ),
        ]


# --- Performance alerts (issue #9 §4) -------------------------------------------------------------
MAX_ALERT_WINDOW_POINTS = 100_000
MAX_ALERT_WINDOW_MINUTES = 60 * 24 * 90  # the metric history's usual retention


class AlertAggregate(models.TextChoices):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    COUNT = "count"


class AlertCondition(models.TextChoices):
    ABOVE = "above"  # the aggregate is above `threshold`
    BELOW = "below"  # the aggregate is below `threshold`
    DROP = "drop"  # worse than the baseline version's by more than `drop_by` (absolute or relative)
    NO_DATA = "no_data"  # no point at all in the last `window_minutes`


class AlertBaseline(models.TextChoices):
    PREVIOUS = "previous"  # the version active on the rule's target before the current one
    DEFAULT = "default"  # the model's default version


class AlertSeverity(models.TextChoices):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertAction(models.TextChoices):
    NONE = "none"
    ROLLBACK = "rollback"  # roll back the target's active deployment when it is the alerting version
    PAUSE_EXPERIMENT = "pause_experiment"  # pause the running experiment in which it is a treatment


class AlertRule(models.Model):
    """A condition on a metric's recent history that raises an Alert for a version while it holds
    (deployments_app.alerts evaluates it when points arrive and in `manage.py evaluate_alerts`). With a
    target, the rule watches the version active there and the variants of an experiment running there;
    without one, every version of the model that receives points."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="alert_rules")
    # CASCADE: a target can only be deleted when nothing was ever deployed there, so its rules watched nothing.
    target = models.ForeignKey(Target, on_delete=models.CASCADE, null=True, blank=True, related_name="alert_rules")
    name = models.CharField(max_length=128, validators=[validate_one_line])
    metric = models.CharField(max_length=64, validators=[RegexValidator(METRIC_NAME_PATTERN)])
    source = models.CharField(
        max_length=40,
        blank=True,
        default="",
        validators=[RegexValidator(SOURCE_PATTERN)],
        help_text="Only points from this source (production, canary...); empty: every source.",
    )
    aggregate = models.CharField(max_length=8, choices=AlertAggregate.choices, default=AlertAggregate.AVG)
    window_points = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_ALERT_WINDOW_POINTS)],
        help_text="Aggregate the last N points (give this or window_minutes).",
    )
    window_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_ALERT_WINDOW_MINUTES)],
        help_text="Aggregate the points of the last T minutes (give this or window_points).",
    )
    condition = models.CharField(max_length=8, choices=AlertCondition.choices)
    threshold = models.FloatField(null=True, blank=True, validators=[validate_finite], help_text="For above and below.")
    baseline = models.CharField(
        max_length=8, choices=AlertBaseline.choices, blank=True, default="", help_text="For drop."
    )
    drop_by = models.FloatField(
        null=True,
        blank=True,
        validators=[validate_finite, MinValueValidator(0.0)],
        help_text="For drop: by how much worse than the baseline (in the metric's direction) it may get.",
    )
    drop_relative = models.BooleanField(
        default=False, help_text="For drop: drop_by is a fraction of the baseline's value (0.05 = 5%)."
    )
    min_points = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_ALERT_WINDOW_POINTS)],
        help_text="Fewer points than this in the window: no decision (the alert's state stays as it is).",
    )
    severity = models.CharField(max_length=8, choices=AlertSeverity.choices, default=AlertSeverity.WARNING)
    action = models.CharField(max_length=16, choices=AlertAction.choices, default=AlertAction.NONE)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "alert_rules"
        ordering = ["model_id", "name"]
        indexes = [models.Index(fields=["model", "metric"], name="alert_rules_model_metric")]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "name"],
                name="alert_rules_name_unique_per_model",
                violation_error_message="This model has an alert rule with this name already.",
            ),
            models.CheckConstraint(
                condition=Q(aggregate__in=AlertAggregate.values), name="alert_rules_aggregate_valid"
            ),
            models.CheckConstraint(
                condition=Q(condition__in=AlertCondition.values), name="alert_rules_condition_valid"
            ),
            models.CheckConstraint(condition=Q(severity__in=AlertSeverity.values), name="alert_rules_severity_valid"),
            models.CheckConstraint(condition=Q(action__in=AlertAction.values), name="alert_rules_action_valid"),
            models.CheckConstraint(
                condition=Q(window_points__isnull=False, window_minutes__isnull=True, window_points__gte=1)
                | Q(window_points__isnull=True, window_minutes__isnull=False, window_minutes__gte=1),
                name="alert_rules_one_window",
                violation_error_message="Give exactly one window: window_points or window_minutes (at least 1).",
            ),
            models.CheckConstraint(condition=Q(min_points__gte=1), name="alert_rules_min_points_positive"),
            models.CheckConstraint(
                condition=~Q(condition__in=["above", "below"]) | Q(threshold__isnull=False),
                name="alert_rules_threshold_given",
                violation_error_message="An above or below rule needs a threshold.",
            ),
            models.CheckConstraint(
                condition=~Q(condition="drop") | Q(baseline__in=AlertBaseline.values, drop_by__gte=0),
                name="alert_rules_drop_complete",
                violation_error_message="A drop rule needs a baseline (previous or default) and drop_by (0 or more).",
            ),
            models.CheckConstraint(
                condition=~Q(condition="no_data") | Q(window_minutes__isnull=False),
                name="alert_rules_no_data_in_minutes",
                violation_error_message="A no_data rule's window is in minutes (window_minutes).",
            ),
            models.CheckConstraint(
                condition=Q(action="none") | Q(target__isnull=False),
                name="alert_rules_action_needs_target",
                violation_error_message="A rule that rolls back or pauses an experiment needs a target.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.model.name})" if self.model_id else self.name


class AlertState(models.TextChoices):
    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(models.Model):
    """One episode of a rule holding for a version: made when the rule starts firing, resolved when it
    stops; at most one firing per rule and version (a partial unique index), so two ingests arriving
    together raise one alert. Its audit events ('fire_alert', 'resolve_alert', 'acknowledge_alert') are
    the webhook events alert.fired, alert.resolved and alert.acknowledged."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="alerts")
    state = models.CharField(max_length=8, choices=AlertState.choices, default=AlertState.FIRING)
    value = models.FloatField(null=True, blank=True, help_text="The aggregate that fired it (null: no data).")
    reason = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_value = models.FloatField(null=True, blank=True)
    action_taken = models.TextField(blank=True, default="", help_text="What the rule's action did, or why not.")
    acknowledged_by = models.CharField(max_length=150, blank=True, default="")
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "alerts"
        ordering = ["-started_at", "-id"]
        permissions = [("acknowledge_alert", "Can acknowledge an alert")]
        indexes = [models.Index(fields=["state", "-started_at", "-id"], name="alerts_state_newest")]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "version"],
                condition=Q(state="firing"),
                name="alerts_one_firing_per_rule_version",
            ),
            models.CheckConstraint(condition=Q(state__in=AlertState.values), name="alerts_state_valid"),
            models.CheckConstraint(
                condition=Q(state="resolved", resolved_at__isnull=False) | Q(state="firing", resolved_at__isnull=True),
                name="alerts_resolved_at_iff_resolved",
            ),
            models.CheckConstraint(
                condition=Q(acknowledged_at__isnull=True) | ~Q(acknowledged_by=""),
                name="alerts_acknowledged_names_who",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule.name} on {self.version} ({self.state})"
