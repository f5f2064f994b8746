"""What a model's versions and stored files look like after uploads that are refused, cut off or raced
(issue #7, sections 1 and 3), in process; tests/test_interrupted_uploads.py cuts bodies off over a real
socket and tests/test_concurrency.py races real workers.

- Only a version with a file can be the default: GET .../versions/default/file serves a file whenever
  the model has one.
- verify_artifacts and gc_artifacts agree on what an orphan is.
- A stored file that no longer matches its row is not served as if it were whole.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core.management import call_command

from models_app import maintenance, services
from models_app.artifacts import storage_key_for
from models_app.models import Artifact, ModelVersion
from tests.conftest import registry_state, stored_files

pytestmark = pytest.mark.django_db


# --- the default has a file --------------------------------------------------------------------------
def _put(api, model, version, data=b"weights"):
    return api.put(f"/models/{model.name}/versions/{version}/file", data, content_type="application/octet-stream")


def test_a_first_version_without_a_file_is_not_the_default_until_its_file_arrives(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1", data=None)
    assert api.get(f"/models/{model.name}/versions/v1").json()["is_default"] is False
    assert api.get(f"/models/{model.name}/versions/default").status_code == 404
    assert api.get(f"/models/{model.name}").json()["default_version"] is None

    response = _put(api, model, "v1", b"late weights")
    assert response.status_code == 200, response.json()
    assert response.json()["is_default"] is True
    served = api.get(f"/models/{model.name}/versions/default/file")
    assert served.status_code == 200 and b"".join(served.streaming_content) == b"late weights"


def test_the_first_version_with_a_file_becomes_the_default(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1", data=None)
    make_version(model, "v2", data=b"two")
    assert api.get(f"/models/{model.name}/versions/default").json()["version"] == "v2"
    assert api.get(f"/models/{model.name}/versions/default/file").status_code == 200
    # A file attached later to another version does not take the default away.
    assert _put(api, model, "v1", b"one").json()["is_default"] is False
    assert api.get(f"/models/{model.name}/versions/default").json()["version"] == "v2"


def test_an_archived_version_does_not_become_the_default_when_its_file_arrives(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1", data=None, status="archived")
    assert _put(api, model, "v1").json()["is_default"] is False


@pytest.mark.parametrize("how", ["action", "patch"])
def test_a_version_without_a_file_cannot_be_made_the_default(api, make_model, make_version, storage_dir, how):
    model = make_model()
    make_version(model, "v1", data=b"one")
    make_version(model, "v2", data=None)
    before = registry_state(storage_dir)
    if how == "action":
        response = api.post(f"/models/{model.name}/versions/v2/default")
    else:
        response = api.patch(f"/models/{model.name}/versions/v2", {"is_default": True}, format="json")
    assert response.status_code == 409, response.json()
    assert "PUT /models/" in response.json()["detail"] and "/versions/v2/file" in response.json()["detail"]
    assert registry_state(storage_dir) == before


@pytest.mark.parametrize("form", ["json", "multipart"])
def test_registering_a_default_without_a_file_is_refused(api, make_model, storage_dir, form):
    model = make_model()
    before = registry_state(storage_dir)
    response = api.post(
        f"/models/{model.name}/versions", {"version": "v1", "format": "onnx", "is_default": True}, format=form
    )
    assert response.status_code == 409, response.json()
    assert list(response.json()["errors"]) == ["is_default"]
    assert "/versions/v1/file" in response.json()["detail"]
    assert registry_state(storage_dir) == before


def test_set_default_command_refuses_a_version_without_a_file(make_model, make_version):
    model = make_model()
    make_version(model, "v1", data=None)
    with pytest.raises(Exception, match="has no file"):
        call_command("set_default", model.name, "v1")
    assert not ModelVersion.objects.filter(is_default=True).exists()


# --- one definition of an orphan ---------------------------------------------------------------------
def _verify_orphans() -> list[str]:
    return maintenance.verify_artifacts().orphaned


def _gc_would_remove() -> list[str]:
    report = maintenance.collect_garbage(grace=timedelta(0), dry_run=True)
    return sorted([storage_key_for(sha) for sha in report.artifacts] + report.orphans)


def test_verify_and_gc_agree_on_the_orphans_a_deletion_leaves(make_model, make_version, storage_dir):
    """A version deleted while its file's removal did not run (here: the commit hook is not run)."""
    model = make_model()
    make_version(model, "v1", data=b"kept")
    doomed = make_version(model, "v2", data=b"deleted")
    services.delete_version(version=doomed)
    assert _verify_orphans() == _gc_would_remove() == [storage_key_for(doomed.checksum)]
    # A file with no row at all, as a crash between storing and linking leaves.
    stray = storage_dir / storage_key_for("ab" * 32)
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"stray")
    assert (
        _verify_orphans()
        == _gc_would_remove()
        == sorted([storage_key_for(doomed.checksum), storage_key_for("ab" * 32)])
    )


def test_a_committed_deletion_removes_the_files_it_leaves_unreferenced(
    make_model, make_version, storage_dir, django_capture_on_commit_callbacks
):
    model = make_model()
    kept = make_version(model, "v1", data=b"kept")
    shared = make_version(model, "v2", data=b"shared")
    make_version(make_model(), "v1", data=b"shared")
    doomed = make_version(model, "v3", data=b"deleted")
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_version(version=shared)
        services.delete_version(version=doomed)
    assert _verify_orphans() == _gc_would_remove() == []
    assert sorted(p.name for p in stored_files(storage_dir)) == sorted([kept.checksum, shared.checksum])
    assert not Artifact.objects.filter(pk=doomed.checksum).exists()

    with django_capture_on_commit_callbacks(execute=True):
        services.delete_model(model=model)
    assert [p.name for p in stored_files(storage_dir)] == [shared.checksum]
    assert _verify_orphans() == _gc_would_remove() == []


# --- a file changed behind the registry's back ------------------------------------------------------
def _replace_stored(backend, storage_dir, key: str, data: bytes | None) -> None:
    """Change (or with None remove) a stored file the way an operator's mistake or a failing disk would."""
    if backend.name == "local":
        path = storage_dir / key
        path.unlink()
        if data is not None:
            path.write_bytes(data)
    elif data is None:
        backend.client.delete_object(Bucket=backend.bucket, Key=f"models/{key}")
    else:
        backend.client.put_object(Bucket=backend.bucket, Key=f"models/{key}", Body=data)


@pytest.mark.parametrize("headers", [{}, {"HTTP_RANGE": "bytes=0-3"}], ids=["whole", "range"])
@pytest.mark.parametrize(
    "damage", [b"weights, cut", b"weights, and then some more", None], ids=["shorter", "longer", "missing"]
)
def test_a_stored_file_of_the_wrong_size_is_not_served(
    api, make_model, make_version, backend, storage_dir, caplog, headers, damage
):
    model = make_model()
    version = make_version(model, "v1", data=b"weights, the real ones")
    _replace_stored(backend, storage_dir, version.file_path, damage)
    for url in (f"/models/{model.name}/versions/v1/file", f"/models/{model.name}/versions/default/file"):
        with caplog.at_level(logging.ERROR, logger="models_app.downloads"):
            response = api.get(url, **headers)
        assert response.status_code == 503
        assert response["Content-Type"] == "application/json"
        detail = response.json()["detail"]
        assert "version 'v1'" in detail and (
            "missing" in detail if damage is None else f"{len(damage)} bytes" in detail
        )
        assert version.file_path in caplog.text
