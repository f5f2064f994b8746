"""The seed's models and model versions, and the stored files (artifacts) that versions point to.

Invariants live here as database constraints, so they hold whichever front door (API, admin, command)
or however many workers write; each field's rule (alphabet, range, shape...) is a validator on the field,
applied by the API's serializers, the admin's forms and the services alike. The workflows that change
several rows at once are in services.py.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxLengthValidator, RegexValidator
from django.db import models
from django.db.models import F, Q

from registry_site.errors import invalid_choice_message
from registry_site.model_fields import OpenChoiceField, RuledJSONField
from registry_site.prepared import PreparedInsertModel
from registry_site.validators import (
    CHOICE_VALUE_SHAPE,
    METRIC_NAME_PATTERN,
    validate_json_object,
    validate_metric_directions,
    validate_one_line,
    validate_shape,
    validate_unit_interval,
)

# A name or version becomes part of a URL and of log lines, never of a file path (files are stored
# under their sha256). Still, keep both to a conservative alphabet so no path trick, control or bidi
# character gets in at all.
# Not starting with '-' either: manage.py's commands would read "-dash" as an option. "$(?!\n)" because
# Python's $ also matches before a final line break ("v1\n"); \Z would do, but the pattern also goes into
# the OpenAPI schema, where it must be an ECMAScript regex.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$(?!\n)"
name_validator = RegexValidator(
    NAME_PATTERN,
    "Use 1-128 ASCII letters, digits, '_', '-' or '.', not starting with a dot or a dash.",
)
version_validator = RegexValidator(
    r"^[A-Za-z0-9_][A-Za-z0-9_.+\-]{0,63}$(?!\n)",
    "Use 1-64 ASCII letters, digits, '_', '-', '+' or '.', not starting with a dot or a dash (no slashes).",
)
# These words name routes (/versions/default, /versions/latest), so they can never be versions.
RESERVED_VERSIONS = frozenset({"default", "latest"})


class ModelType(models.TextChoices):
    CLASSIFICATION = "classification"
    OBJECT_DETECTION = "object_detection"
    FACE_RECOGNITION = "face_recognition"
    SEGMENTATION = "segmentation"
    AUDIO = "audio"
    OTHER = "other"


class ModelFormat(models.TextChoices):
    TENSORFLOW_SAVED_MODEL = "tensorflow_saved_model", "TensorFlow SavedModel"
    ONNX = "onnx", "ONNX"
    TFLITE = "tflite", "TensorFlow Lite"
    PYTORCH = "pytorch", "PyTorch"
    OTHER = "other", "Other"


def _with_extras(choices: list[tuple[str, str]], extras: list[str]) -> list[tuple[str, str]]:
    known = {value for value, _ in choices}
    return [*choices, *((value, value) for value in extras if value not in known)]


def model_type_choices() -> list[tuple[str, str]]:
    """The seed's model types, `other`, and those REGISTRY_EXTRA_MODEL_TYPES adds: read at each use, never
    kept from import time, so adding one is a restart and not a migration."""
    return _with_extras(ModelType.choices, settings.REGISTRY_EXTRA_MODEL_TYPES)


def format_choices() -> list[tuple[str, str]]:
    """The seed's formats, `other`, and those REGISTRY_EXTRA_FORMATS adds (sklearn, xgboost, gguf...)."""
    return _with_extras(ModelFormat.choices, settings.REGISTRY_EXTRA_FORMATS)


class VersionStatus(models.TextChoices):
    TRAINING = "training"
    TESTING = "testing"
    APPROVED = "approved"
    DEPRECATED = "deprecated"
    ARCHIVED = "archived"


class FormatCheckResult(models.TextChoices):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class RegisteredModel(models.Model):
    """A named model (the seed's `models` table). Named so it does not shadow django.db.models.Model."""

    name = models.CharField(max_length=128, unique=True, validators=[name_validator])
    description = models.TextField(blank=True, default="", validators=[MaxLengthValidator(10_000)])
    model_type = OpenChoiceField(max_length=32, choices=model_type_choices)
    is_active = models.BooleanField(default=True)
    # The model card: Markdown, shown rendered (and sanitized) in the admin.
    readme = models.TextField(
        blank=True,
        default="",
        validators=[MaxLengthValidator(100_000)],
        help_text="The model card, in Markdown: what the model does, its data, its limits.",
    )
    # Which way each metric is better, where the name does not say it (models_app.comparison).
    metric_directions = RuledJSONField(
        default=dict,
        blank=True,
        validators=[validate_metric_directions],
        help_text='Which values of a metric are better, where its name does not tell: {"ece": "lower"}. '
        "Names with loss, latency, error, mse, mae or perplexity are lower-is-better, others higher.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "models"
        ordering = ["name"]
        verbose_name = "model"
        constraints = [
            # The list of types is a setting (model_type_choices); the database checks the shape.
            models.CheckConstraint(condition=Q(model_type__regex=CHOICE_VALUE_SHAPE), name="models_model_type_shape"),
        ]

    def __str__(self) -> str:
        return self.name


class Artifact(PreparedInsertModel):
    """One stored file, keyed by the sha256 of its bytes. Versions with identical files share a row,
    so the file is stored once and is never removed while any version points to it."""

    sha256 = models.CharField(max_length=64, primary_key=True)
    size = models.BigIntegerField()
    storage_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "artifacts"
        # The console lists files newest first (admin, issue #15).
        indexes = [models.Index(fields=["-created_at"], name="artifacts_newest")]
        constraints = [
            models.CheckConstraint(condition=Q(size__gte=0), name="artifacts_size_nonnegative"),
            models.CheckConstraint(condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="artifacts_sha256_hex"),
        ]

    def __str__(self) -> str:
        return f"{self.sha256[:12]} ({self.size} bytes)"


METRIC_FIELDS = ("accuracy", "precision", "recall", "f1_score", "mAP")


class ModelVersion(PreparedInsertModel):
    """One version of a model (the seed's `model_versions` table)."""

    # No index of its own: every index below starts with the model, and with one on the model alone
    # PostgreSQL's planner, not knowing which model a page's subquery names, chose it and then sorted all
    # of a big model's versions for a page of 50 (105 ms instead of 9 at 20,000 versions).
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions", db_index=False)
    version = models.CharField(max_length=64, validators=[version_validator])
    format = OpenChoiceField(max_length=32, choices=format_choices)
    status = models.CharField(
        max_length=16,
        choices=VersionStatus.choices,
        default=VersionStatus.TRAINING,
        error_messages={"invalid_choice": invalid_choice_message(VersionStatus.choices, "%(value)s")},
    )

    # The file: `checksum` is the sha256 of the bytes and the key of the artifacts row.
    artifact = models.ForeignKey(
        Artifact,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_column="checksum",
        related_name="versions",
    )
    file_name = models.CharField(max_length=255, blank=True, default="")
    # Does the file look like `format`? Empty while the version has no file (see format_checks.py).
    format_check = models.CharField(max_length=8, choices=FormatCheckResult.choices, blank=True, default="")
    format_check_detail = models.CharField(max_length=255, blank=True, default="")

    # Metrics in [0, 1]; the database's check constraints below say the same.
    accuracy = models.FloatField(null=True, blank=True, validators=[validate_unit_interval])
    precision = models.FloatField(null=True, blank=True, validators=[validate_unit_interval])
    recall = models.FloatField(null=True, blank=True, validators=[validate_unit_interval])
    f1_score = models.FloatField(null=True, blank=True, validators=[validate_unit_interval])
    mAP = models.FloatField(null=True, blank=True, validators=[validate_unit_interval])

    input_shape = RuledJSONField(
        null=True,
        blank=True,
        validators=[validate_shape],
        help_text="JSON list such as [1, 3, 224, 224]; -1 or null marks a dynamic dimension.",
    )
    output_shape = RuledJSONField(
        null=True, blank=True, validators=[validate_shape], help_text="JSON list such as [1, 1000]."
    )
    training_config = RuledJSONField(
        default=dict, blank=True, validators=[validate_json_object], help_text='JSON object such as {"epochs": 90}.'
    )
    release_notes = models.TextField(blank=True, default="", validators=[MaxLengthValidator(100_000)])
    deployment_config = RuledJSONField(
        default=dict,
        blank=True,
        validators=[validate_json_object],
        help_text="JSON object; a deployment uses it unless given its own.",
    )

    # Lineage: where the version came from (all optional; identifiers, one line each).
    training_run = models.CharField(
        max_length=512,
        blank=True,
        default="",
        validators=[validate_one_line],
        help_text="The training run's id or URL (MLflow, W&B, SageMaker...).",
    )
    code_commit = models.CharField(
        max_length=128, blank=True, default="", validators=[validate_one_line], help_text="The code's commit."
    )
    dataset_name = models.CharField(max_length=255, blank=True, default="", validators=[validate_one_line])
    dataset_version = models.CharField(max_length=128, blank=True, default="", validators=[validate_one_line])

    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "model_versions"
        ordering = ["-id"]
        verbose_name = "model version"
        indexes = [
            # A model's newest versions (its page, its filtered version list) without sorting them all.
            models.Index(fields=["model", "-id"], name="model_versions_model_newest"),
            # GET /models/{name}/versions/latest: the newest by creation time, without sorting them all.
            models.Index(fields=["model", "-created_at", "-id"], name="model_versions_model_latest"),
            # Search by the start of a version string; PostgreSQL's LIKE 'x%' needs the pattern opclass
            # (ignored elsewhere: SQLite's range match uses the plain index). Issue #15.
            models.Index(fields=["version"], name="model_versions_version_prefix", opclasses=["varchar_pattern_ops"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="model_versions_unique_version"),
            models.UniqueConstraint(fields=["model"], condition=Q(is_default=True), name="model_versions_one_default"),
            models.CheckConstraint(
                condition=~Q(status=VersionStatus.ARCHIVED, is_default=True),
                name="model_versions_archived_not_default",
            ),
            # The default is what `.../versions/default/file` serves: it must have a file.
            models.CheckConstraint(
                condition=~Q(is_default=True, artifact__isnull=True),
                name="model_versions_default_has_file",
            ),
            models.CheckConstraint(condition=Q(format__regex=CHOICE_VALUE_SHAPE), name="model_versions_format_shape"),
            models.CheckConstraint(condition=Q(status__in=VersionStatus.values), name="model_versions_status_valid"),
            *(
                models.CheckConstraint(
                    condition=Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__gte": 0.0, f"{field}__lte": 1.0}),
                    name=f"model_versions_{field.lower()}_in_unit_range",
                )
                for field in METRIC_FIELDS
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.name}:{self.version}"

    @property
    def checksum(self) -> str | None:
        return self.artifact_id

    @property
    def file_size(self) -> int | None:
        return self.artifact.size if self.artifact is not None else None

    @property
    def file_path(self) -> str | None:
        return self.artifact.storage_key if self.artifact is not None else None


# The database's own check of a name (PostgreSQL's and Python's regexes both know \A and \Z); the full rule,
# without '__' too, is METRIC_NAME_PATTERN, applied before anything is written.
_NAME_SHAPE = r"\A[A-Za-z][A-Za-z0-9_.\-]{0,63}\Z"
_LARGEST_FLOAT = 1.7976931348623157e308


class VersionMetric(models.Model):
    """One named metric of a version (issue #9), beside the seed's five columns. A table rather than a
    JSON column so a model's versions can be filtered and sorted by any metric through one index: (model,
    name, value, version) serves `?ordering=-metric.auc` as an index scan that stops after a page, and the
    cursor's tie-break (the version's id) is the index's last column. `model` repeats the version's model
    (a version never moves) so that the index can lead with it."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="metric_values")
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=64, validators=[RegexValidator(METRIC_NAME_PATTERN)])
    value = models.FloatField()

    class Meta:
        db_table = "version_metrics"
        ordering = ["name"]
        indexes = [models.Index(fields=["model", "name", "value", "version"], name="version_metrics_sort")]
        constraints = [
            models.UniqueConstraint(fields=["version", "name"], name="version_metrics_one_per_name"),
            models.CheckConstraint(
                condition=Q(name__regex=_NAME_SHAPE) & ~Q(name__contains="__"), name="version_metrics_name_shape"
            ),
            # NaN (above every number in PostgreSQL's order) and infinities are refused; SQLite stores NaN as NULL.
            models.CheckConstraint(
                condition=Q(value__gte=-_LARGEST_FLOAT, value__lte=_LARGEST_FLOAT), name="version_metrics_value_finite"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class VersionTag(models.Model):
    """One string tag of a version (key/value, like MLflow's), filterable with `?tag.key=value`."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="tag_values")
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=64, validators=[RegexValidator(METRIC_NAME_PATTERN)])
    value = models.CharField(max_length=1000)

    class Meta:
        db_table = "version_tags"
        ordering = ["key"]
        indexes = [models.Index(fields=["model", "key", "value", "version"], name="version_tags_lookup")]
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="version_tags_one_per_key"),
            models.CheckConstraint(
                condition=Q(key__regex=_NAME_SHAPE) & ~Q(key__contains="__"), name="version_tags_key_shape"
            ),
            models.CheckConstraint(condition=~Q(value=""), name="version_tags_value_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


# A point's source says where its number came from: "eval", "canary", "production", a dataset's name...
# A conservative alphabet (it is a query parameter and a label on charts), at most 32 characters so that
# the retention's ".daily" suffix (models_app.metric_history) always fits the column.
SOURCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}$(?!\n)"
SOURCE_RULE = "1-32 ASCII letters, digits, '_', '.' or '-', starting with a letter or digit"
_SOURCE_SHAPE = r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}\Z"


class MetricPoint(models.Model):
    """One time-stamped observation of a version's metric (issue #9, metric history): append-only, many
    per version (a batch is up to 10,000). Read by (version, name, time) and summarized by (name, source,
    bucket of time); the two indexes below serve those reads, and the first one also serves the foreign
    key (so the column has no index of its own, one less to maintain per inserted row)."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="metric_points", db_index=False)
    name = models.CharField(max_length=64, validators=[RegexValidator(METRIC_NAME_PATTERN)])
    value = models.FloatField()
    timestamp = models.DateTimeField()
    step = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=40, default="eval", validators=[RegexValidator(SOURCE_PATTERN)])

    class Meta:
        db_table = "metric_points"
        indexes = [
            models.Index(fields=["version", "timestamp", "id"], name="metric_points_version_time"),
            models.Index(fields=["version", "name", "timestamp"], name="metric_points_name_time"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(name__regex=_NAME_SHAPE) & ~Q(name__contains="__"), name="metric_points_name_shape"
            ),
            models.CheckConstraint(
                condition=Q(value__gte=-_LARGEST_FLOAT, value__lte=_LARGEST_FLOAT), name="metric_points_value_finite"
            ),
            models.CheckConstraint(
                condition=Q(step__isnull=True) | Q(step__gte=0), name="metric_points_step_nonnegative"
            ),
            models.CheckConstraint(condition=Q(source__regex=_SOURCE_SHAPE), name="metric_points_source_shape"),
        ]

    def __str__(self) -> str:
        return f"{self.name}={self.value} @ {self.timestamp:%Y-%m-%dT%H:%M:%SZ} ({self.source})"


class MetricRollup(models.Model):
    """One UTC hour of one (version, name, source) series of MetricPoint, pre-aggregated: how many points,
    their sum, smallest and largest value, first and last time, and the latest point's value (`last_id`
    breaks a tie of times as the points' own order does: the larger id is the later point). Written only by
    models_app.metric_history in the transaction that writes the points, so it always equals an aggregate of
    the points; a summary reads these rows instead of every point (issue #9: 1,000,000 points in 200 ms)."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="metric_rollups", db_index=False)
    name = models.CharField(max_length=64)
    source = models.CharField(max_length=40)
    hour = models.DateTimeField(help_text="The hour's start, in UTC.")
    count = models.BigIntegerField()
    total = models.FloatField(help_text="The sum of the hour's values.")
    minimum = models.FloatField()
    maximum = models.FloatField()
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    last_value = models.FloatField()
    last_id = models.BigIntegerField(help_text="The latest point's id.")

    class Meta:
        db_table = "metric_rollups"
        constraints = [
            # Also the index every summary reads by (and the foreign key's).
            models.UniqueConstraint(fields=["version", "name", "source", "hour"], name="metric_rollups_one_per_hour"),
            models.CheckConstraint(condition=Q(count__gte=1), name="metric_rollups_count_positive"),
            models.CheckConstraint(condition=Q(minimum__lte=F("maximum")), name="metric_rollups_min_le_max"),
            models.CheckConstraint(condition=Q(first_at__lte=F("last_at")), name="metric_rollups_first_le_last"),
            models.CheckConstraint(condition=Q(first_at__gte=F("hour")), name="metric_rollups_within_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.source}) {self.hour:%Y-%m-%dT%H}h: {self.count} points"
