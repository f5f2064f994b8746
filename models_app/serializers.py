"""The JSON shapes of models and versions, and validation of what clients send."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from models_app.models import (
    ModelFormat,
    ModelType,
    ModelVersion,
    RegisteredModel,
    VersionStatus,
    name_validator,
    version_validator,
)
from models_app.selectors import deployed_targets
from registry_site.fields import (
    JSONObjectField,
    ShapeField,
    StrictFieldsMixin,
    UnitIntervalField,
    choice_field,
)


def declared_sha256_field() -> serializers.RegexField:
    return serializers.RegexField(
        r"^[0-9a-fA-F]{64}$",
        required=False,
        help_text="The sha256 the client expects the file to have; on a mismatch nothing is stored.",
        error_messages={"invalid": "Must be 64 hexadecimal digits."},
    )


class RegisteredModelSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    name = serializers.CharField(max_length=128, validators=[name_validator])
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    model_type = choice_field(ModelType.choices)
    default_version = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = ["id", "name", "description", "model_type", "is_active", "default_version", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    @property
    def immutable_fields(self):
        return {"name": "A model's name cannot be changed."} if self.instance is not None else {}

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_default_version(self, obj) -> str | None:
        return getattr(obj, "default_version", None)


class VersionChangeSerializer(StrictFieldsMixin, serializers.Serializer):
    """What may be given when a version is registered and changed afterwards (PATCH)."""

    immutable_fields = {
        "version": "A version's string cannot be changed; register a new version.",
        "file": "A version's file cannot be changed; register a new version.",
        "model": "A version cannot move to another model.",
    }

    format = choice_field(ModelFormat.choices, required=False)
    status = choice_field(VersionStatus.choices, required=False)
    accuracy = UnitIntervalField(required=False, allow_null=True)
    precision = UnitIntervalField(required=False, allow_null=True)
    recall = UnitIntervalField(required=False, allow_null=True)
    f1_score = UnitIntervalField(required=False, allow_null=True)
    mAP = UnitIntervalField(required=False, allow_null=True)
    input_shape = ShapeField(required=False, allow_null=True)
    output_shape = ShapeField(required=False, allow_null=True)
    training_config = JSONObjectField(required=False)
    deployment_config = JSONObjectField(required=False)
    release_notes = serializers.CharField(required=False, allow_blank=True, max_length=100_000)
    is_default = serializers.BooleanField(required=False)


class VersionCreateSerializer(VersionChangeSerializer):
    """The seed's multipart form (every value as text, `file` optional) or the same fields as JSON."""

    immutable_fields = {}

    version = serializers.CharField(max_length=64, validators=[version_validator])
    format = choice_field(ModelFormat.choices)
    file = serializers.FileField(required=False, max_length=None)
    sha256 = declared_sha256_field()

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if "sha256" in attrs and "file" not in attrs:
            raise serializers.ValidationError({"sha256": ["Only meaningful with a file."]})
        return attrs


class FileUploadSerializer(StrictFieldsMixin, serializers.Serializer):
    """PUT .../file as a multipart form; a raw application/octet-stream body needs no serializer."""

    file = serializers.FileField(max_length=None)
    sha256 = declared_sha256_field()


class ModelVersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    file_path = serializers.CharField(read_only=True, allow_null=True, help_text="Storage key of the file.")
    file_size = serializers.IntegerField(read_only=True, allow_null=True)
    checksum = serializers.CharField(read_only=True, allow_null=True, help_text="sha256 of the file.")
    file_url = serializers.SerializerMethodField()
    deployed_to = serializers.SerializerMethodField()
    input_shape = ShapeField(read_only=True, allow_null=True)
    output_shape = ShapeField(read_only=True, allow_null=True)
    training_config = JSONObjectField(read_only=True)
    deployment_config = JSONObjectField(read_only=True)

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
            "input_shape",
            "output_shape",
            "training_config",
            "release_notes",
            "deployed_to",
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
        return reverse("version-file", kwargs={"name": obj.model.name, "version": obj.version})

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_deployed_to(self, obj: ModelVersion) -> list[str]:
        return deployed_targets(obj)
