"""The database itself refuses rows that break the registry's invariants, whatever code writes them."""

import pytest
from django.db import IntegrityError, transaction

from deployments_app.models import Deployment, DeploymentStatus
from models_app.models import Artifact, ModelVersion


def _artifact(byte: str = "a") -> Artifact:
    sha = byte * 64
    return Artifact.objects.create(sha256=sha, size=1, storage_key=f"sha256/{sha[:2]}/{sha[2:4]}/{sha}")


def _refused(create) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


@pytest.mark.django_db
def test_one_default_version_per_model(make_model):
    model = make_model()
    file = _artifact()
    ModelVersion.objects.create(model=model, version="v1", format="onnx", is_default=True, artifact=file)
    _refused(
        lambda: ModelVersion.objects.create(model=model, version="v2", format="onnx", is_default=True, artifact=file)
    )
    other = make_model()
    ModelVersion.objects.create(model=other, version="v1", format="onnx", is_default=True, artifact=file)


@pytest.mark.django_db
def test_a_default_version_has_a_file(make_model):
    model = make_model()
    _refused(lambda: ModelVersion.objects.create(model=model, version="v1", format="onnx", is_default=True))
    version = ModelVersion.objects.create(model=model, version="v1", format="onnx", artifact=_artifact())
    version.artifact = None
    version.is_default = True
    _refused(version.save)


@pytest.mark.django_db
def test_version_unique_per_model(make_model):
    model = make_model()
    ModelVersion.objects.create(model=model, version="v1", format="onnx")
    _refused(lambda: ModelVersion.objects.create(model=model, version="v1", format="onnx"))


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["accuracy", "precision", "recall", "f1_score", "mAP"])
@pytest.mark.parametrize("value", [-0.01, 1.01])
def test_metrics_outside_unit_interval(make_model, field, value):
    model = make_model()
    _refused(lambda: ModelVersion.objects.create(model=model, version="v1", format="onnx", **{field: value}))


@pytest.mark.django_db
def test_unknown_enum_values(make_model):
    model = make_model()
    # The formats are a setting (issue #9): the database checks a format's shape, the models its list.
    _refused(lambda: ModelVersion.objects.create(model=model, version="v1", format="Keras Model"))
    _refused(lambda: ModelVersion.objects.create(model=model, version="v1", format="onnx", status="gone"))


@pytest.mark.django_db
def test_archived_version_cannot_be_default(make_model):
    model = make_model()
    _refused(
        lambda: ModelVersion.objects.create(
            model=model, version="v1", format="onnx", status="archived", is_default=True, artifact=_artifact()
        )
    )


@pytest.mark.django_db
def test_one_active_deployment_per_model_and_target(make_model):
    model = make_model()
    v1 = ModelVersion.objects.create(model=model, version="v1", format="onnx")
    v2 = ModelVersion.objects.create(model=model, version="v2", format="onnx")
    Deployment.objects.create(model=model, model_version=v1, deployment_target_id="production")
    _refused(lambda: Deployment.objects.create(model=model, model_version=v2, deployment_target_id="production"))
    Deployment.objects.create(model=model, model_version=v2, deployment_target_id="staging")
    Deployment.objects.create(
        model=model, model_version=v2, deployment_target_id="production", deployment_status=DeploymentStatus.SUPERSEDED
    )


@pytest.mark.django_db
def test_rolled_back_deployment_has_its_time(make_model):
    model = make_model()
    v1 = ModelVersion.objects.create(model=model, version="v1", format="onnx")
    _refused(
        lambda: Deployment.objects.create(
            model=model, model_version=v1, deployment_target_id="production", deployment_status="rolled_back"
        )
    )
