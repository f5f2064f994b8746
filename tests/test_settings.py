"""Configuration from the environment: strict parsing, the seed's DATABASE_URL, and the Docker files
that mirror the seed's local stack (this machine has no Docker engine to run them)."""

from pathlib import Path

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured

from registry_site import settings as registry_settings

ROOT = Path(__file__).resolve().parent.parent


def test_the_seeds_database_url_means_postgresql_through_psycopg():
    config = registry_settings.database_from_url(
        "postgresql+asyncpg://photoidentifier:password@postgres:5432/photoidentifier"
    )
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["NAME"], config["USER"], config["PASSWORD"]) == ("photoidentifier",) * 2 + ("password",)
    assert (config["HOST"], config["PORT"]) == ("postgres", 5432)


def test_sqlite_urls_get_the_concurrency_options(tmp_path):
    config = registry_settings.database_from_url(f"sqlite:///{tmp_path}/r.sqlite3")
    assert config["ENGINE"] == "registry_site.sqlite"
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_unsupported_database_urls_fail_loudly(url):
    with pytest.raises(ImproperlyConfigured):
        registry_settings.database_from_url(url)


def test_env_helpers_refuse_malformed_values(monkeypatch):
    monkeypatch.setenv("X_BOOL", "maybe")
    monkeypatch.setenv("X_INT", "12GB")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL"):
        registry_settings.envbool("X_BOOL", False)
    with pytest.raises(ImproperlyConfigured, match="X_INT"):
        registry_settings.envint("X_INT", 1)
    monkeypatch.setenv("X_BOOL", "yes")
    assert registry_settings.envbool("X_BOOL", False) is True


def test_secrets_can_come_from_files(monkeypatch, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("s3cr3t\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert registry_settings.envsecret("X_SECRET") == "s3cr3t"


def test_compose_file_mirrors_the_seed():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    registry = compose["services"]["model-registry"]
    postgres = compose["services"]["postgres"]
    assert registry["container_name"] == "photoidentifier-model-registry"
    assert postgres["container_name"] == "photoidentifier-registry-db"
    assert registry["ports"] == ["127.0.0.1:8003:8003"]
    assert "./models:/models/storage" in registry["volumes"]
    assert (
        "DATABASE_URL=postgresql+asyncpg://photoidentifier:password@postgres:5432/photoidentifier"
        in (registry["environment"])
    )
    assert registry["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_image_migrates_once_before_serving():
    entrypoint = (ROOT / "docker-entrypoint.sh").read_text()
    assert entrypoint.index("manage.py migrate") < entrypoint.index('exec "$@"')
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "collectstatic" in dockerfile and "gunicorn" in dockerfile


def test_compose_runs_the_webhook_worker_from_the_registry_image():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    registry, worker = compose["services"]["model-registry"], compose["services"]["webhook-worker"]
    assert worker["image"] == registry["image"] and worker["command"][-2:] == ["manage.py", "deliver_webhooks"]
    assert worker["environment"] == registry["environment"]  # the same database and settings
    assert worker["depends_on"]["model-registry"]["condition"] == "service_healthy"  # migrated first
    assert "ports" not in worker and worker["restart"] == "unless-stopped"
