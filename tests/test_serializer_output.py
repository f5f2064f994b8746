"""RegistryModelSerializer.to_representation reads each field's attributes its own way (faster, issue #12):
every output serializer gives what DRF's own Serializer.to_representation gives, for the registry's
objects in their different states (with and without a file, deployed or not, a model with and without a
default), and a field reading through a missing relation or a callable still goes DRF's way."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework import serializers

from deployments_app.models import Deployment, Target
from deployments_app.serializers import DeploymentSerializer, TargetSerializer
from models_app import selectors
from models_app.models import ModelVersion, RegisteredModel
from models_app.serializers import (
    ModelVersionSerializer,
    RegisteredModelListSerializer,
    RegisteredModelSerializer,
    version_file_url,
)
from registry_site.fields import RegistryModelSerializer
from tests.conftest import deployed

pytestmark = pytest.mark.django_db


def drf_output(serializer: serializers.Serializer, instance) -> dict:
    return serializers.Serializer.to_representation(serializer, instance)


@pytest.fixture
def registry(api, make_model, make_version):
    vision = make_model("vision", description="cats")
    make_version(vision, "1.0", metrics='{"auc": 0.91}', tags='{"team": "cv"}', accuracy="0.5")
    make_version(vision, "2.0", data=None)
    deployed(api, vision, "1.0", "production")
    make_model("empty")


def test_versions_read_as_drf_reads_them(registry):
    versions = list(selectors.versions_of("vision")) + list(ModelVersion.objects.all())  # annotated or not
    assert len(versions) == 4
    for version in versions:
        serializer = ModelVersionSerializer()
        assert serializer.to_representation(version) == drf_output(serializer, version)
    page = ModelVersionSerializer(selectors.versions_of("vision"), many=True).data
    assert [item["file_url"] for item in page] == [None, "/models/vision/versions/1.0/file"]


@pytest.mark.parametrize("serializer_class", [RegisteredModelSerializer, RegisteredModelListSerializer])
def test_models_read_as_drf_reads_them(registry, serializer_class):
    for model in list(selectors.models_with_default()) + list(RegisteredModel.objects.all()):
        serializer = serializer_class()
        assert serializer.to_representation(model) == drf_output(serializer, model)


def test_deployments_and_targets_read_as_drf_reads_them(registry):
    for deployment in Deployment.objects.all():
        assert DeploymentSerializer().to_representation(deployment) == drf_output(DeploymentSerializer(), deployment)
    for target in Target.objects.all():
        assert TargetSerializer().to_representation(target) == drf_output(TargetSerializer(), target)


class Odd(RegistryModelSerializer):
    """Fields that DRF reads in special ways: through a relation that may be missing, a callable."""

    artifact_size = serializers.IntegerField(source="artifact.size", allow_null=True, read_only=True)
    label = serializers.CharField(source="__str__", read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["version", "artifact_size", "label"]


def test_special_reads_go_drfs_way(registry):
    without_file = ModelVersion.objects.get(version="2.0")
    assert Odd().to_representation(without_file) == {"version": "2.0", "artifact_size": None, "label": "vision:2.0"}
    with_file = ModelVersion.objects.get(version="1.0")
    assert Odd().to_representation(with_file) == drf_output(Odd(), with_file)
    assert Odd().to_representation(with_file)["artifact_size"] == len(b"weights")


def test_times_and_plain_values_read_as_drf_reads_them_in_any_zone(registry):
    """The plan writes a DateTimeField's ISO 8601 itself, with the zone read once per serializer, and
    returns a str, int, float or bool as it is where DRF's field would: the same text in UTC, in an
    activated zone, and for a version whose model's columns a list does not read."""
    from django.utils import timezone

    listed = list(selectors.versions_listed("vision"))
    for zone in ("UTC", "Europe/Paris", "America/St_Johns"):
        with timezone.override(zone):
            for version in listed + list(ModelVersion.objects.all()):
                serializer = ModelVersionSerializer()
                out = serializer.to_representation(version)
                assert out == drf_output(serializer, version)
                assert out["created_at"].endswith("Z") == (zone == "UTC")


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_no_serializer_loses_a_validator_drf_would_derive(db):
    # RegistryModelSerializer.get_validators skips ModelSerializer's derivation from the model (uniqueness
    # is the services' to decide, under a lock): for every serializer of the registry it derives none.
    classes = list(_subclasses(RegistryModelSerializer))
    assert len(classes) >= 10
    for cls in classes:
        serializer = cls()
        assert serializer.get_validators() == serializers.ModelSerializer.get_validators(serializer) == [], cls


@pytest.mark.parametrize("version", ["1.0.3", "v2_rc-1~x", "4.0-beta+x", "a b", "50%", "ü1", "a:b@c", "x;y=z"])
@pytest.mark.parametrize("model", ["vision", "a b"])
def test_a_version_s_file_url_is_the_route_reversed(model, version):
    """version_file_url puts the version into a URL reversed once per model: as reverse() quotes it."""
    expected = reverse("version-file", kwargs={"name": model, "version": version})
    assert version_file_url(model, version) == expected
