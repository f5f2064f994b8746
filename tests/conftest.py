"""Shared fixtures: a private storage folder per test, API clients, and factories for test data."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from deployments_app.models import Approval, Deployment, PromotionPolicy, Target
from models_app import services
from models_app.models import Artifact, ModelVersion, RegisteredModel, VersionMetric, VersionTag
from registry_site.authentication import issue_token
from registry_site.models import ApiToken, AuditEvent, WebhookDelivery, WebhookSubscription
from registry_site.roles import ensure_roles
from tests.s3 import s3_bucket, s3_endpoint, s3_storage_settings  # noqa: F401  (fixtures)

_names = itertools.count(1)

# Marks of tests that start a process (a server, a command, a browser): each makes a test `slow`.
SLOW_MARKS = ("browser", "gunicorn", "s3", "subprocess")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks
def pytest_collection_modifyitems(items):
    for item in items:
        if "s3_endpoint" in item.fixturenames:
            item.add_marker(pytest.mark.s3)
        if item.get_closest_marker("s3"):
            # One moto server for the session: keep every S3 test on the same xdist worker.
            item.add_marker(pytest.mark.xdist_group("s3"))
        if any(item.get_closest_marker(mark) for mark in SLOW_MARKS):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("own_sqlite") and connection.vendor == "postgresql":  # opens no connection
            item.add_marker(pytest.mark.skip(reason="runs on SQLite files of its own: the SQLite suite runs it"))


@pytest.fixture(scope="session", autouse=True)
def _no_per_test_startup_costs():
    """Two costs production pays once per process, which the suite would pay in nearly every test:
    hashing a password with a million PBKDF2 rounds (admin_user, admin_client, staff personas), and
    whitenoise listing every static file when a test client builds its middleware. Tests of password
    login still log in, and the tests of static serving turn the start-up listing back on."""
    with override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"], WHITENOISE_AUTOREFRESH=True
    ):
        yield


# The targets deployments_app's migration 0005 makes, and the further ones the suite deploys to (before
# targets were a table any name was one). A test of a target's own rules makes its own.
MIGRATION_TARGETS = {"staging": (False, 10), "production": (True, 20)}  # name: (protected, display order)
SUITE_TARGETS = ("canary", "edge", "prod", "batch", "s")


def ensure_targets() -> None:
    """Make the targets tests deploy to, when missing: a transactional test's flush empties the table the
    migration filled, as it does the role groups (user_with_role)."""
    wanted = {**MIGRATION_TARGETS, **dict.fromkeys(SUITE_TARGETS, (False, 100))}
    present = set(Target.objects.filter(name__in=wanted).values_list("name", flat=True))
    Target.objects.bulk_create(
        Target(name=name, protected=protected, display_order=order)
        for name, (protected, order) in wanted.items()
        if name not in present
    )


@pytest.fixture(autouse=True)
def known_targets(request):
    """ensure_targets() for every test that uses the database (through the django_db mark, `db` or
    `transactional_db`), once its database is set up."""
    node = request.node
    if not (node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames)):
        return
    request.getfixturevalue("_django_db_helper")
    ensure_targets()


@pytest.fixture(autouse=True)
def storage_dir(tmp_path, settings):
    """Every test stores artifacts in its own folder, with uploads staged on the same filesystem."""
    location = tmp_path / "storage"
    incoming = location / ".incoming"
    incoming.mkdir(parents=True)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "registry_site.storage.LocalArtifactStorage",
            "OPTIONS": {"location": str(location), "allow_overwrite": True},
        },
    }
    settings.FILE_UPLOAD_TEMP_DIR = str(incoming)
    # Every batch of points evaluates the alert rules: tests send several within a millisecond.
    settings.REGISTRY_ALERT_EVALUATION_SECONDS = 0
    return location


@dataclass
class Backend:
    name: str
    read: Callable[[str], bytes]  # the stored bytes under a storage key
    keys: Callable[[], list[str]]  # every stored key
    client: object = None  # boto3's S3 client, on S3
    bucket: str = ""


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request, settings, storage_dir):
    """Run a test on the local folder and again on S3 (moto's server)."""
    if request.param == "local":
        return Backend(
            "local",
            read=lambda key: (storage_dir / key).read_bytes(),
            keys=lambda: [str(p.relative_to(storage_dir)) for p in stored_files(storage_dir)],
        )
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket, client = request.getfixturevalue("s3_bucket")
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(endpoint, bucket)}
    listed = lambda: client.list_objects_v2(Bucket=bucket).get("Contents", [])  # noqa: E731
    return Backend(
        "s3",
        read=lambda key: client.get_object(Bucket=bucket, Key=f"models/{key}")["Body"].read(),
        keys=lambda: sorted(obj["Key"].removeprefix("models/") for obj in listed()),
        client=client,
        bucket=bucket,
    )


def user_with_role(username: str, role: str | None = "editor", **fields) -> User:
    """A user in one of the role groups (remade when missing: a transactional test's flush empties
    the groups the migrations made)."""
    user = User.objects.create_user(username, **fields)
    if role is not None:
        if not Group.objects.filter(name=role).exists():
            ensure_roles(Group, Permission)
        user.groups.add(Group.objects.get(name=role))
    return user


def token_client(user: User, address: str = "127.0.0.1") -> APIClient:
    """An API client calling from `address` with a fresh token of `user`."""
    _, token = issue_token(user=user, name=f"{user.get_username()} token")
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@dataclass
class Persona:
    role: str  # one of the role groups, or "anonymous"
    user: User | None
    client: APIClient


@pytest.fixture
def persona(db) -> Callable[..., Persona]:
    """persona("deployer"): a user of that role (named "deployer-user" unless `username` says) with an
    API client holding a fresh token of theirs; persona("anonymous"): a client with no token."""

    def make(role: str, *, username: str | None = None, address: str = "127.0.0.1") -> Persona:
        if role == "anonymous":
            return Persona(role, None, APIClient(REMOTE_ADDR=address))
        user = user_with_role(username or f"{role}-user", role)
        return Persona(role, user, token_client(user, address))

    return make


def production_mode(settings, **overrides) -> None:
    """Switch the registry to production mode: tokens required, reads included; writes throttled at a
    rate no test reaches unless it sets its own."""
    settings.LOCAL_MODE = False
    settings.REGISTRY_PUBLIC_READ = False
    settings.REGISTRY_THROTTLE_WRITES = "10000/min"
    for name, value in overrides.items():
        setattr(settings, name, value)


@pytest.fixture
def production(settings):
    """The registry in production mode for the whole test (see production_mode)."""
    production_mode(settings)
    return settings


def registry_state(storage_dir) -> dict:
    """Every row a write could touch, and every stored or staged file: equal before and after a
    refused request."""
    return {
        "models": list(RegisteredModel.objects.order_by("pk").values()),
        "versions": list(ModelVersion.objects.order_by("pk").values()),
        "metrics": list(VersionMetric.objects.order_by("pk").values()),
        "tags": list(VersionTag.objects.order_by("pk").values()),
        "artifacts": list(Artifact.objects.order_by("pk").values()),
        "deployments": list(Deployment.objects.order_by("pk").values()),
        "targets": list(Target.objects.order_by("pk").values()),
        "policies": list(PromotionPolicy.objects.order_by("pk").values()),
        "approvals": list(Approval.objects.order_by("pk").values()),
        "audit": list(AuditEvent.objects.order_by("pk").values()),
        "webhooks": list(WebhookSubscription.objects.order_by("pk").values()),
        "deliveries": list(WebhookDelivery.objects.order_by("pk").values()),
        "tokens": list(ApiToken.objects.order_by("pk").values("pk", "digest", "revoked_at", "expires_at")),
        "files": sorted(str(p) for p in storage_dir.rglob("*") if p.is_file()),
    }


def stored_files(storage_dir) -> list:
    """Files in the artifact storage, the staging folder excluded."""
    return sorted(p for p in storage_dir.rglob("*") if p.is_file() and ".incoming" not in p.parts)


def staged_files(storage_dir) -> list:
    return sorted(p for p in (storage_dir / ".incoming").rglob("*") if p.is_file())


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(data: bytes = b"model-bytes", name: str = "model.onnx") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def deploy(api, model, version: str, target: str = "production", **extra):
    """POST /deploy of `version` of `model` (a model or its name) to `target`."""
    name = model if isinstance(model, str) else model.name
    body = {"model_name": name, "version": version, "deployment_target": target, "deployed_by": "admin", **extra}
    return api.post("/deploy", body, format="json")


def deployed(api, model, version: str, target: str = "production", **extra) -> dict:
    """deploy(), which must create a deployment; its JSON."""
    response = deploy(api, model, version, target, **extra)
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def make_model(db):
    def make(name: str | None = None, model_type: str = "classification", **fields) -> RegisteredModel:
        return services.create_model(name=name or f"model_{next(_names)}", model_type=model_type, **fields)

    return make


@pytest.fixture
def make_version(db, api, make_model):
    """Register a version through the API's own multipart path, so its file is hashed and stored as in
    production."""

    def make(
        model: RegisteredModel | None = None, version: str = "v1", data: bytes | None = b"weights", **fields
    ) -> ModelVersion:
        model = model or make_model()
        form = {"version": version, "format": fields.pop("format", "onnx"), **fields}
        if data is not None:
            form["file"] = upload(data)
        response = api.post(f"/models/{model.name}/versions", form, format="multipart")
        assert response.status_code == 201, response.json()
        return ModelVersion.objects.get(model=model, version=version)

    return make


@dataclass
class World:
    model: RegisteredModel  # "resnet"
    v1: ModelVersion  # the default, with a file, active on staging
    v2: ModelVersion  # with a file, never deployed
    v3: ModelVersion  # no file yet
    spare: RegisteredModel  # no versions, no deployments: deletable
    staging: Deployment  # v1 on staging, active


@pytest.fixture
def world(api, make_model, make_version) -> World:
    """A small registry made through the API in local mode, for tests of who may do what to it and
    what each write records. A test that needs production mode switches after it is made."""
    model = make_model(name="resnet")
    v1 = make_version(model, "v1", data=b"one")
    v2 = make_version(model, "v2", data=b"two")
    v3 = make_version(model, "v3", data=None)
    spare = make_model(name="spare")
    response = deploy(api, model, "v1", "staging", deployed_by="ci")
    assert response.status_code == 201, response.json()
    return World(model, v1, v2, v3, spare, Deployment.objects.get(pk=response.json()["id"]))
