"""The JSON shapes of models and versions, and validation of what clients send."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from django.urls import get_script_prefix, reverse
from django.utils.http import RFC3986_SUBDELIMS
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from models_app import open_metadata, services
from models_app.models import SOURCE_PATTERN, FormatCheckResult, MetricPoint, ModelVersion, RegisteredModel
from models_app.selectors import deployed_targets, experiment_splits
from registry_site.fields import (
    MetricsChangeField,
    MetricsField,
    RegistryModelSerializer,
    StrictFieldsMixin,
    TagsChangeField,
    TagsField,
    declared_sha256_field,
)


class RegisteredModelSerializer(RegistryModelSerializer):
    """A model, with the name of its default version."""

    default_version = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = [
            "id",
            "name",
            "description",
            "model_type",
            "is_active",
            "default_version",
            "readme",
            "metric_directions",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    @property
    def immutable_fields(self):
        return {"name": "A model's name cannot be changed."} if self.instance is not None else {}

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_default_version(self, obj) -> str | None:
        return getattr(obj, "default_version", None)


class RegisteredModelChangeSerializer(RegisteredModelSerializer):
    """PATCH /models/{name} as the schema shows it: the name is in the URL and never changes (the view's
    RegisteredModelSerializer refuses it with a message saying so)."""

    class Meta(RegisteredModelSerializer.Meta):
        fields = ["description", "model_type", "is_active", "readme", "metric_directions"]


class RegisteredModelListSerializer(RegisteredModelSerializer):
    """A model in a list: without its model card (up to 100,000 characters each), which GET /models/{name}
    returns."""

    class Meta(RegisteredModelSerializer.Meta):
        fields = [name for name in RegisteredModelSerializer.Meta.fields if name != "readme"]


class VersionChangeSerializer(RegistryModelSerializer):
    """What may be given when a version is registered and changed afterwards (PATCH)."""

    # Each field and its rule come from the model field (RegistryModelSerializer); the named metrics and
    # the tags are maps, changed as merge patches (null removes a name).
    metrics = MetricsChangeField(required=False)
    tags = TagsChangeField(required=False)

    immutable_fields = {
        "version": "A version's string cannot be changed; register a new version.",
        "file": "A version's file cannot be changed; register a new version.",
        "model": "A version cannot move to another model.",
    }

    class Meta:
        model = ModelVersion
        fields = [f.name for f in ModelVersion._meta.fields if f.name in services.EDITABLE_VERSION_FIELDS]
        fields += ["is_default", "metrics", "tags"]
        extra_kwargs = {name: {"required": False} for name in fields}


class VersionCreateSerializer(VersionChangeSerializer):
    """The seed's multipart form (every value as text, `file` optional) or the same fields as JSON."""

    immutable_fields = {}

    metrics = MetricsField(required=False)
    tags = TagsField(required=False)
    file = serializers.FileField(required=False, max_length=None)
    sha256 = declared_sha256_field()

    class Meta(VersionChangeSerializer.Meta):
        fields = ["version", *VersionChangeSerializer.Meta.fields, "file", "sha256"]
        extra_kwargs = {name: {"required": False} for name in fields if name not in ("version", "format")}

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if "sha256" in attrs and "file" not in attrs:
            raise serializers.ValidationError({"sha256": ["Only meaningful with a file."]})
        return attrs


class VersionCreateJSONSerializer(VersionCreateSerializer):
    """The same fields as a JSON body, as the schema shows them: a JSON body carries no file (it is
    attached afterwards with PUT .../file), so no `sha256` of one either."""

    file = None  # type: ignore[assignment]
    sha256 = None  # type: ignore[assignment]

    class Meta(VersionCreateSerializer.Meta):
        fields = [name for name in VersionCreateSerializer.Meta.fields if name not in ("file", "sha256")]


class FileUploadSerializer(StrictFieldsMixin, serializers.Serializer):
    """PUT .../file as a multipart form; a raw application/octet-stream body needs no serializer."""

    file = serializers.FileField(max_length=None)
    sha256 = declared_sha256_field()


class VersionSplitSerializer(serializers.Serializer):
    target = serializers.CharField()
    experiment = serializers.IntegerField(help_text="The experiment's id: GET /experiments/{id}.")
    state = serializers.ChoiceField(choices=["running", "paused"], help_text="A paused experiment serves its control.")
    variant = serializers.CharField()
    weight = serializers.IntegerField(help_text="Basis points of the target's traffic (10000 = all).")
    is_control = serializers.BooleanField()


class ModelVersionSerializer(RegistryModelSerializer):
    """A version, with its file's facts and where it is deployed."""

    model = serializers.CharField(source="model.name", read_only=True)
    # The file's facts read where they are (the version's properties of the same names read them there too):
    # a row view (registry_site.row_views) answers these paths from its row without a view of the file.
    file_path = serializers.CharField(
        source="artifact.storage_key", read_only=True, allow_null=True, help_text="Storage key of the file."
    )
    file_size = serializers.IntegerField(source="artifact.size", read_only=True, allow_null=True)
    checksum = serializers.CharField(
        source="artifact_id", read_only=True, allow_null=True, help_text="sha256 of the file."
    )
    file_url = serializers.SerializerMethodField()
    deployed_to = serializers.SerializerMethodField()
    experiments = serializers.SerializerMethodField(
        help_text="Where a running or paused A/B test splits a target's traffic with this version as a variant "
        "(`deployed_to` lists the targets where it is the active version)."
    )
    metrics = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    format_check = serializers.ChoiceField(
        choices=FormatCheckResult.choices,
        allow_blank=True,
        read_only=True,
        help_text="Does the file look like `format`? Empty while the version has no file.",
    )

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "model",
            "version",
            "format",
            "status",
            "file_path",
            "file_name",
            "file_size",
            "checksum",
            "file_url",
            "format_check",
            "format_check_detail",
            "accuracy",
            "precision",
            "recall",
            "f1_score",
            "mAP",
            "metrics",
            "tags",
            "input_shape",
            "output_shape",
            "training_config",
            "training_run",
            "code_commit",
            "dataset_name",
            "dataset_version",
            "release_notes",
            "deployed_to",
            "experiments",
            "deployment_config",
            "is_default",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_file_url(self, obj: ModelVersion) -> str | None:
        if not obj.artifact_id:
            return None
        prefix = self.__dict__.get("_script_prefix")
        if prefix is None:  # once per serializer, not once per row of a page
            prefix = self.__dict__["_script_prefix"] = get_script_prefix()
        return version_file_url(obj.model.name, obj.version, prefix)

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "number", "format": "double"}})
    def get_metrics(self, obj: ModelVersion) -> dict[str, float]:
        return open_metadata.metrics_of(obj)

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
    def get_tags(self, obj: ModelVersion) -> dict[str, str]:
        return open_metadata.tags_of(obj)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_deployed_to(self, obj: ModelVersion) -> list[str]:
        return deployed_targets(obj)

    @extend_schema_field(VersionSplitSerializer(many=True))
    def get_experiments(self, obj: ModelVersion) -> list[dict[str, Any]]:
        return experiment_splits(obj)


def version_file_url(model_name: str, version: str, script_prefix: str | None = None) -> str:
    """reverse("version-file", ...) for a page of versions: reversing the route for each of 50 rows cost
    7% of the page's CPU, so the URL around the version is reversed once per model (and script prefix),
    and the version quoted into it as reverse() quotes it (a version of letters, digits, `.`, `-`, `_`
    and `~`, as most are, has nothing to quote)."""
    head, tail = _file_url_around_version(script_prefix or get_script_prefix(), model_name)
    if _UNQUOTED.fullmatch(version):
        return head + version + tail
    return head + quote(version, safe=RFC3986_SUBDELIMS + "/~:@") + tail


_UNQUOTED = re.compile(r"[A-Za-z0-9._~-]*")  # RFC 3986's unreserved characters, which quote() never quotes


_VERSION_MARK = "+@+"  # where the version goes; after the model's name, so the last one is the version's


@lru_cache(maxsize=1024)
def _file_url_around_version(script_prefix: str, model_name: str) -> tuple[str, str]:
    head, _, tail = reverse("version-file", kwargs={"name": model_name, "version": _VERSION_MARK}).rpartition(
        _VERSION_MARK
    )
    return head, tail


# 2 to 20 names separated by commas, in the names' alphabets: what the schema can say of `versions`. A
# version: its own name, or @ and a target's (models_app.models.version_validator, Target's rule).
_VERSION_REF = r"@?[A-Za-z0-9_.+\-]+"
_MODEL_VERSION_REF = rf"[A-Za-z0-9_.\-]+:{_VERSION_REF}"


class CompareQuerySerializer(StrictFieldsMixin, serializers.Serializer):
    """GET /models/{name}/compare's query: which versions (the first the baseline), and what of them."""

    versions = serializers.RegexField(
        rf"^{_VERSION_REF}(?:,{_VERSION_REF}){{1,19}}$(?!\n)",
        max_length=4000,
        help_text="2 to 20 versions separated by commas, each named once, the first the baseline: a version string, `default`, "
        "`latest` or `@target` (the version active there).",
        error_messages={"invalid": "2 to 20 versions separated by commas, without spaces (letters, digits, _.+-, @)."},
    )
    window = serializers.RegexField(
        r"^[1-9][0-9]{0,4}[mhdw]$(?!\n)",
        required=False,
        help_text="Compare the metric history of the last 30m, 24h, 7d, 2w... instead of the registered metrics.",
        error_messages={"invalid": "A duration such as 30m, 24h, 7d or 2w."},
    )
    source = serializers.RegexField(
        SOURCE_PATTERN,
        required=False,
        help_text="Compare the metric history's points from this source only (production...); with no "
        "`window`, all of them.",
    )
    agg = serializers.ChoiceField(
        choices=["avg", "min", "max"],
        required=False,
        help_text="How the metric history's points aggregate (avg); with no `window`, all of them.",
    )

    def validate_versions(self, value: str) -> list[str]:
        return value.split(",")


class CrossModelCompareQuerySerializer(CompareQuerySerializer):
    """GET /compare's query: each version `model:version`, with the same choices after the colon."""

    versions = serializers.RegexField(
        rf"^{_MODEL_VERSION_REF}(?:,{_MODEL_VERSION_REF}){{1,19}}$(?!\n)",
        max_length=4000,
        help_text="2 to 20 versions `model:version` separated by commas, each named once, the first the baseline; after the "
        "colon a version string, `default`, `latest` or `@target`.",
        error_messages={"invalid": "2 to 20 model:version names separated by commas, without spaces."},
    )


class ComparedVersionSerializer(serializers.Serializer):
    asked = serializers.CharField(help_text="The version as the request named it.")
    model = serializers.CharField()
    version = serializers.CharField()
    status = serializers.CharField()
    format = serializers.CharField()
    file_size = serializers.IntegerField(allow_null=True)
    sha256 = serializers.CharField(allow_null=True)
    format_check = serializers.CharField()
    deployed_to = serializers.ListField(child=serializers.CharField())
    is_default = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    metrics = serializers.DictField(
        child=serializers.FloatField(),
        help_text="The seed's five and the named ones; with `window`, each one's aggregate over the window.",
    )
    points = serializers.DictField(
        child=serializers.IntegerField(), allow_null=True, help_text="With `window`: the points behind each metric."
    )


class MetricDifferenceSerializer(serializers.Serializer):
    version = serializers.CharField()
    absolute = serializers.FloatField(allow_null=True, help_text="value - baseline's value")
    relative = serializers.FloatField(allow_null=True, help_text="absolute / |baseline's value|; null when 0")
    better = serializers.BooleanField(allow_null=True, help_text="null: equal, or a value is missing")


class ComparedMetricSerializer(serializers.Serializer):
    name = serializers.CharField()
    direction = serializers.ChoiceField(choices=["higher", "lower"], help_text="Which values are better.")
    values = serializers.DictField(child=serializers.FloatField(allow_null=True))
    best = serializers.ListField(child=serializers.CharField(), help_text="The version(s) with the best value.")
    differences = MetricDifferenceSerializer(many=True, help_text="From the baseline, for each other version.")


class CompatibilitySerializer(serializers.Serializer):
    version = serializers.CharField()
    drop_in = serializers.BooleanField(help_text="Same format, input shape and output shape as the baseline.")
    same_format = serializers.BooleanField()
    same_input_shape = serializers.BooleanField()
    same_output_shape = serializers.BooleanField()


class ConfigDiffSerializer(serializers.Serializer):
    version = serializers.CharField()
    added = serializers.DictField(help_text="Keys (dotted paths) only this version's training_config has.")
    removed = serializers.DictField(help_text="Keys only the baseline's has.")
    changed = serializers.DictField(help_text='Keys whose value differs: {"optimizer.lr": {"from": .., "to": ..}}.')


class ComparisonBasisSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["registered", "history"])
    window = serializers.CharField(allow_null=True)
    source = serializers.CharField(allow_null=True)
    agg = serializers.CharField(allow_null=True)


class VersionComparisonSerializer(serializers.Serializer):
    baseline = serializers.CharField()
    basis = ComparisonBasisSerializer(help_text="What was compared: the registered metrics, or a window of history.")
    versions = ComparedVersionSerializer(many=True)
    metrics = ComparedMetricSerializer(many=True)
    compatibility = CompatibilitySerializer(many=True)
    training_config = ConfigDiffSerializer(many=True)


# --- A version's metric history (issue #9, section 2) ------------------------------------------------
class MetricPointSerializer(serializers.ModelSerializer):
    """A recorded point, as listed. What a client sends is checked by models_app.metric_history (one
    pass over a batch of up to 10,000, each problem naming its field); this also documents it."""

    class Meta:
        model = MetricPoint
        fields = ["name", "value", "timestamp", "step", "source"]
        extra_kwargs = {
            "timestamp": {"required": False, "help_text": "ISO 8601; without an offset, UTC. Default: now."},
            "step": {"min_value": 0, "help_text": "The training step or epoch, when there is one."},
            "source": {"required": False, "help_text": "Where the number came from; default 'eval'."},
        }


class MetricBatchSerializer(serializers.Serializer):
    points = serializers.ListField(
        child=MetricPointSerializer(),
        min_length=1,
        max_length=10_000,
        help_text="1 to 10,000 points; all are recorded or none.",
    )


class MetricsRecordedSerializer(serializers.Serializer):
    recorded = serializers.IntegerField(help_text="How many points were recorded.")


class MetricBucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="The bucket's start, in UTC.")
    value = serializers.FloatField(help_text="The aggregate of the bucket's points.")
    count = serializers.IntegerField(help_text="How many points the bucket has.")


class MetricSeriesSerializer(serializers.Serializer):
    name = serializers.CharField()
    source = serializers.CharField()
    buckets = MetricBucketSerializer(many=True)


class MetricSummarySerializer(serializers.Serializer):
    bucket = serializers.CharField()
    agg = serializers.CharField()
    series = MetricSeriesSerializer(many=True, help_text="One per (name, source), in that order.")
