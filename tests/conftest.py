"""Shared fixtures: a private storage folder per test, API clients, and factories for test data."""
from __future__ import annotations

import hashlib
import itertools

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.test import APIClient

from models_app import services
from models_app.models import ModelVersion, RegisteredModel

_names = itertools.count(1)


@pytest.fixture(autouse=True)
def storage_dir(tmp_path, settings):
    """Every test stores artifacts in its own folder, with uploads staged on the same filesystem."""
    location = tmp_path / "storage"
    incoming = location / ".incoming"
    incoming.mkdir(parents=True)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location), "allow_overwrite": True},
        },
    }
    settings.FILE_UPLOAD_TEMP_DIR = str(incoming)
    return location


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


@pytest.fixture
def make_model(db):
    def make(name: str | None = None, model_type: str = "classification", **fields) -> RegisteredModel:
        return services.create_model(name=name or f"model_{next(_names)}", model_type=model_type, **fields)

    return make


@pytest.fixture
def make_version(db, api, make_model):
    """Register a version through the API's own multipart path, so its file is hashed and stored as in
    production."""

    def make(model: RegisteredModel | None = None, version: str = "v1", data: bytes | None = b"weights",
             **fields) -> ModelVersion:
        model = model or make_model()
        form = {"version": version, "format": fields.pop("format", "onnx"), **fields}
        if data is not None:
            form["file"] = upload(data)
        response = api.post(f"/models/{model.name}/versions", form, format="multipart")
        assert response.status_code == 201, response.json()
        return ModelVersion.objects.get(model=model, version=version)

    return make
