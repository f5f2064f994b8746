"""Write throttling in production: per token user, reads exempt, local mode exempt, and counted in the
database cache that every worker shares."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.cache import cache, caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connection
from rest_framework.test import APIClient

from models_app.models import RegisteredModel
from registry_site.authentication import issue_token
from registry_site.models import AuditEvent
from tests.conftest import token_client, user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(production, make_model):
    make_model(name="resnet")
    production.REGISTRY_THROTTLE_WRITES = "3/min"
    return production


def editor_client(username: str, address: str = "127.0.0.1") -> tuple[User, APIClient]:
    user = user_with_role(username, "editor")
    return user, token_client(user, address)


def write(client: APIClient, text: str = "x"):
    return client.patch("/models/resnet", {"description": text}, format="json")


def test_the_fourth_write_in_a_minute_is_429_with_retry_after(production):
    _, alice = editor_client("alice")
    for n in range(3):
        assert write(alice, f"edit {n}").status_code == 200
    events = AuditEvent.objects.count()

    refused = write(alice, "one too many")

    assert refused.status_code == 429, refused.content
    assert 0 < int(refused["Retry-After"]) <= 60
    assert refused.json()["detail"]
    # The refused write wrote nothing.
    assert RegisteredModel.objects.get(name="resnet").description == "edit 2"
    assert AuditEvent.objects.count() == events


def test_every_kind_of_write_counts(production):
    _, alice = editor_client("alice")
    assert alice.post("/models", {"name": "m1", "model_type": "audio"}, format="json").status_code == 201
    assert write(alice).status_code == 200
    assert alice.delete("/models/m1").status_code == 204
    assert alice.post("/models", {"name": "m2", "model_type": "audio"}, format="json").status_code == 429
    assert not RegisteredModel.objects.filter(name="m2").exists()


def test_another_user_is_not_affected(production):
    _, alice = editor_client("alice")
    _, bob = editor_client("bob")  # same address: the count is per user, not per address
    for _ in range(3):
        write(alice)
    assert write(alice).status_code == 429
    for _ in range(3):
        assert write(bob).status_code == 200
    assert write(bob).status_code == 429


def test_a_second_token_of_the_same_user_shares_the_count(production):
    user, alice = editor_client("alice")
    _, second = issue_token(user=user, name="second")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {second}")
    for _ in range(3):
        write(alice)
    assert write(other).status_code == 429


def test_reads_are_not_throttled(production):
    _, alice = editor_client("alice")
    for _ in range(3):
        write(alice)
    for _ in range(10):
        assert alice.get("/models").status_code == 200
        assert alice.get("/models/resnet").status_code == 200


def test_reads_do_not_use_up_writes(production):
    _, alice = editor_client("alice")
    for _ in range(10):
        alice.get("/models")
    for _ in range(3):
        assert write(alice).status_code == 200


def test_local_mode_is_not_throttled(production):
    production.LOCAL_MODE = True
    anonymous = APIClient()
    for n in range(8):
        assert write(anonymous, f"local {n}").status_code == 200


def test_refused_requests_are_not_served_even_when_under_the_limit(production):
    """The throttle adds a refusal; it never replaces the permission check."""
    assert write(token_client(user_with_role("victor", "viewer"))).status_code == 403
    assert write(APIClient()).status_code == 401


def test_the_counter_lives_in_the_database_cache_table(production):
    user, alice = editor_client("alice")
    assert django_settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    assert isinstance(caches["default"], DatabaseCache)
    assert caches["default"]._table == "registry_cache"

    write(alice)

    with connection.cursor() as cursor:
        cursor.execute("SELECT cache_key FROM registry_cache")
        keys = [row[0] for row in cursor.fetchall()]
    assert any("throttle" in key and f"user:{user.pk}" in key for key in keys), keys


def test_workers_share_the_count_through_the_table(production):
    """Another worker is another process with its own memory: all it shares is the table. Emptying the
    process's own view of the cache (a fresh DatabaseCache object on the same table) keeps the count."""
    user, alice = editor_client("alice")
    for _ in range(3):
        write(alice)
    other_worker = DatabaseCache("registry_cache", {})
    history = other_worker.get(f"registry:throttle:write:user:{user.pk}")
    assert history is not None and len(history) == 3
    # Clearing the table resets everyone: proof the count is nowhere else.
    cache.clear()
    assert write(alice).status_code == 200
