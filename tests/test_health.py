import pytest
from django.db import connection


@pytest.mark.django_db
def test_health_reports_database_and_storage(api):
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "database": "ok", "storage": "ok"}


@pytest.mark.django_db
def test_health_is_503_when_storage_is_unusable(api, settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the storage folder should be")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "registry_site.storage.LocalArtifactStorage",
            "OPTIONS": {"location": str(blocker / "storage")},
        },
    }
    response = api.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["database"] == "ok"
    assert body["storage"].startswith("error")


@pytest.mark.django_db
def test_health_is_503_when_the_database_fails(api, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database is down")

    monkeypatch.setattr(connection, "cursor", broken)
    response = api.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert "database is down" in body["database"]
    assert body["storage"] == "ok"
