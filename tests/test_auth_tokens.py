"""Bearer tokens: what authenticates, what is refused (401 with `WWW-Authenticate: Bearer`), what is
stored (only the sha256), the throttle on failed attempts, and creating and revoking tokens in the admin."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from models_app.models import RegisteredModel
from registry_site.authentication import digest_of, issue_token, revoke_token
from registry_site.models import ApiToken, AuditEvent, FailureCounter
from tests.conftest import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(production):
    production.REGISTRY_AUTH_FAILURES_PER_MINUTE = 20
    return production


def client_with(token: str | None, address: str = "127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def create_model(client: APIClient, name: str = "tokened"):
    return client.post("/models", {"name": name, "model_type": "classification"}, format="json")


def assert_401(response) -> None:
    assert response.status_code == 401, (response.status_code, response.content)
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"]


# --- A valid token ----------------------------------------------------------------------------------
def test_a_valid_token_authenticates_reads_and_writes(production):
    user = user_with_role("alice")
    _, token = issue_token(user=user, name="ci")
    client = client_with(token)

    assert client.get("/models").status_code == 200
    response = create_model(client)

    assert response.status_code == 201, response.json()
    assert RegisteredModel.objects.filter(name="tokened").exists()
    assert AuditEvent.objects.get(action="create", object_type="model").actor == "alice"


def test_the_keyword_is_case_insensitive_like_http_auth_schemes(production):
    _, token = issue_token(user=user_with_role("alice"), name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"bearer {token}")
    assert client.get("/models").status_code == 200


def test_only_the_sha256_of_a_token_is_stored(production):
    user = user_with_role("alice")
    row, token = issue_token(user=user, name="ci")

    row.refresh_from_db()
    assert token.startswith("mvr_") and len(token) >= 40
    assert row.digest == digest_of(token) == hashlib.sha256(token.encode()).hexdigest()
    assert row.prefix == token[:12]
    # The token itself is nowhere in the row: neither a column nor a substring of one.
    for field in ApiToken._meta.concrete_fields:
        value = str(getattr(row, field.attname))
        assert token not in value, field.name
        assert token[12:] not in value, field.name


def test_last_used_at_is_set_by_a_request(production):
    row, token = issue_token(user=user_with_role("alice"), name="ci")
    assert row.last_used_at is None
    before = timezone.now()

    assert client_with(token).get("/models").status_code == 200

    row.refresh_from_db()
    assert row.last_used_at is not None and before <= row.last_used_at <= timezone.now()


def test_last_used_at_is_not_rewritten_on_every_request(production):
    row, token = issue_token(user=user_with_role("alice"), name="ci")
    client = client_with(token)
    client.get("/models")
    row.refresh_from_db()
    first = row.last_used_at

    client.get("/models")
    row.refresh_from_db()
    assert row.last_used_at == first

    # A minute later it moves again.
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=first - timedelta(minutes=5))
    client.get("/models")
    row.refresh_from_db()
    assert row.last_used_at > first


# --- Refused tokens -----------------------------------------------------------------------------------
def test_no_token_is_401_with_the_bearer_challenge(production):
    assert_401(client_with(None).get("/models"))
    assert_401(create_model(client_with(None)))
    assert not RegisteredModel.objects.exists()


@pytest.mark.parametrize(
    "header",
    [
        "Bearer mvr_not-a-real-token",
        "Bearer ",
        "Bearer a b",
        "Bearer \u00e9t\u00e9",
    ],
    ids=["unknown", "empty", "two-words", "non-ascii"],
)
def test_invalid_tokens_are_401(production, header):
    issue_token(user=user_with_role("alice"), name="ci")  # some token exists; this is not it
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.encode("utf-8").decode("latin-1"))

    assert_401(client.get("/models"))
    assert_401(create_model(client))
    assert not RegisteredModel.objects.exists()


def test_a_tokens_digest_is_not_a_token(production):
    row, _ = issue_token(user=user_with_role("alice"), name="ci")
    assert_401(client_with(row.digest).get("/models"))
    assert_401(client_with(row.prefix).get("/models"))


def test_a_revoked_token_is_401(production):
    row, token = issue_token(user=user_with_role("alice"), name="ci")
    client = client_with(token)
    assert client.get("/models").status_code == 200

    revoke_token(token=row)

    assert_401(client.get("/models"))
    assert_401(create_model(client))
    assert not RegisteredModel.objects.exists()


def test_an_expired_token_is_401_and_an_unexpired_one_works(production):
    user = user_with_role("alice")
    _, expired = issue_token(user=user, name="old", expires_at=timezone.now() - timedelta(seconds=1))
    _, fresh = issue_token(user=user, name="new", expires_at=timezone.now() + timedelta(days=1))

    assert_401(client_with(expired).get("/models"))
    assert_401(create_model(client_with(expired)))
    assert create_model(client_with(fresh)).status_code == 201


def test_an_inactive_users_token_is_401(production):
    user = user_with_role("alice")
    _, token = issue_token(user=user, name="ci")
    user.is_active = False
    user.save()

    assert_401(client_with(token).get("/models"))
    assert_401(create_model(client_with(token)))
    assert not RegisteredModel.objects.exists()


def test_other_authorization_schemes_are_not_tokens(production):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic YWxpY2U6c2VjcmV0")
    assert_401(client.get("/models"))


# --- Throttling failed attempts ------------------------------------------------------------------------
def test_failed_attempts_from_one_address_are_throttled(production):
    production.REGISTRY_AUTH_FAILURES_PER_MINUTE = 3
    _, good = issue_token(user=user_with_role("alice"), name="ci")
    attacker = client_with("mvr_guess", address="203.0.113.7")

    for _ in range(3):
        assert_401(attacker.get("/models"))
    refused = attacker.get("/models")

    assert refused.status_code == 429, refused.content
    assert int(refused["Retry-After"]) > 0
    # Another address is not affected, with a good token or a bad one.
    assert client_with(good, address="198.51.100.1").get("/models").status_code == 200
    assert_401(client_with("mvr_other", address="198.51.100.2").get("/models"))


def test_the_failed_attempt_counter_is_a_shared_table_row(production):
    production.REGISTRY_AUTH_FAILURES_PER_MINUTE = 2
    client = client_with("mvr_guess", address="203.0.113.8")
    client.get("/models")
    row = FailureCounter.objects.get(key="token-failures:203.0.113.8")
    assert row.failures == 1


def test_a_valid_token_is_never_refused_by_the_failed_attempt_counter(production):
    """An admin on the same address as a client sending bad tokens keeps working."""
    production.REGISTRY_AUTH_FAILURES_PER_MINUTE = 3
    _, good = issue_token(user=user_with_role("root", "admin"), name="ops")
    attacker = client_with("mvr_guess", address="203.0.113.9")
    for _ in range(5):
        attacker.get("/models")
    assert attacker.get("/models").status_code == 429

    admin = client_with(good, address="203.0.113.9")
    assert admin.get("/audit").status_code == 200
    assert admin.get("/models").status_code == 200
    # ...and the attacker is still refused.
    assert attacker.get("/models").status_code == 429


def test_retry_after_is_the_truth(production):
    production.REGISTRY_AUTH_FAILURES_PER_MINUTE = 2
    attacker = client_with("mvr_guess", address="203.0.113.10")
    for _ in range(2):
        assert_401(attacker.get("/models"))
    # The window started 50 s ago: 10 s are left, whatever the refused attempts meanwhile.
    FailureCounter.objects.filter(key="token-failures:203.0.113.10").update(
        window_started=timezone.now() - timedelta(seconds=50)
    )
    for _ in range(3):
        refused = attacker.get("/models")
        assert refused.status_code == 429
        assert 9 <= int(refused["Retry-After"]) <= 10, refused["Retry-After"]
        assert "Too many failed authentication attempts" in refused.json()["detail"]
    # Once Retry-After has passed, the address is heard again.
    FailureCounter.objects.filter(key="token-failures:203.0.113.10").update(
        window_started=timezone.now() - timedelta(seconds=60)
    )
    assert_401(attacker.get("/models"))
    assert_401(attacker.get("/models"))
    assert attacker.get("/models").status_code == 429


def test_local_mode_checks_tokens_but_never_locks_out(production):
    """Local mode needs no token. One that is sent is still checked: a valid one acts as its user, a bad
    one is a 401 however often it comes (the client meant to send it), never a 429."""
    production.LOCAL_MODE = True
    production.REGISTRY_AUTH_FAILURES_PER_MINUTE = 2
    for _ in range(6):
        assert_401(client_with("mvr_stale").get("/models"))
    assert not FailureCounter.objects.exists()
    assert client_with(None).get("/models").status_code == 200
    _, good = issue_token(user=user_with_role("alice"), name="ci")
    assert client_with(good).get("/models").status_code == 200


def test_successful_requests_do_not_count_as_failures(production):
    production.REGISTRY_AUTH_FAILURES_PER_MINUTE = 2
    _, token = issue_token(user=user_with_role("alice"), name="ci")
    client = client_with(token)
    for _ in range(5):
        assert client.get("/models").status_code == 200


# --- Tokens in the admin ----------------------------------------------------------------------------
def test_admin_creates_a_token_shown_once_in_a_message(admin_client, admin_user):
    owner = user_with_role("ci-bot")
    response = admin_client.post(
        reverse("admin:registry_site_apitoken_add"),
        {"user": owner.pk, "name": "pipeline", "scope_read": "on", "expires_at_0": "", "expires_at_1": ""},
    )

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    row = ApiToken.objects.get()
    assert (row.user, row.name, row.revoked_at) == (owner, "pipeline", None)
    texts = [str(m.message) for m in get_messages(response.wsgi_request)]
    tokens = [t for text in texts for t in re.findall(r"mvr_[A-Za-z0-9_\-]{40,}", text)]  # not the 12-char prefix
    assert len(tokens) == 1, texts
    token = tokens[0]
    assert digest_of(token) == row.digest
    # The token works. The page the admin goes to next shows it (the message); after that no page does.
    assert client_with(token).get("/models").status_code == 200
    assert token in admin_client.get(response["Location"]).content.decode()
    for page in (
        reverse("admin:registry_site_apitoken_change", args=[row.pk]),
        reverse("admin:registry_site_apitoken_changelist"),
    ):
        html = admin_client.get(page).content.decode()
        assert token not in html and row.digest not in html
        assert row.prefix in html
    event = AuditEvent.objects.get(action="create_token")
    assert (event.actor, event.via) == (admin_user.username, "admin")
    assert token not in str(event.changes) and token not in event.object_repr


def test_admin_revokes_a_token(admin_client, admin_user, production):
    row, token = issue_token(user=user_with_role("ci-bot"), name="pipeline")
    assert client_with(token).get("/models").status_code == 200

    response = admin_client.post(
        reverse("admin:registry_site_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [row.pk], "index": 0},
    )

    assert response.status_code == 302
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert_401(client_with(token).get("/models"))
    event = AuditEvent.objects.get(action="revoke_token")
    assert (event.actor, event.via) == (admin_user.username, "admin")


def test_tokens_cannot_be_deleted_or_have_their_user_changed_in_the_admin(admin_client):
    owner = user_with_role("ci-bot")
    other = user_with_role("mallory")
    row, token = issue_token(user=owner, name="pipeline")

    assert (
        admin_client.post(reverse("admin:registry_site_apitoken_delete", args=[row.pk]), {"post": "yes"}).status_code
        == 403
    )
    admin_client.post(
        reverse("admin:registry_site_apitoken_change", args=[row.pk]),
        {"user": other.pk, "name": "renamed", "expires_at_0": "", "expires_at_1": ""},
    )
    row.refresh_from_db()
    assert (row.user, row.name, row.digest) == (owner, "pipeline", digest_of(token))


def test_a_staff_user_with_the_admin_role_can_pick_a_user_for_a_new_token(client):
    """The admin role (not a superuser) creates tokens in the admin: the token form's user field is an
    autocomplete, which needs view permission on users."""
    staff = user_with_role("ops", role="admin", is_staff=True)
    user_with_role("ci-bot")
    client.force_login(staff)

    assert client.get(reverse("admin:registry_site_apitoken_add")).status_code == 200
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "registry_site", "model_name": "apitoken", "field_name": "user", "term": "ci"},
    )
    assert response.status_code == 200
    assert [item["text"] for item in response.json()["results"]] == ["ci-bot"]


@pytest.mark.gunicorn
def test_the_limit_holds_for_100_concurrent_bad_tokens(tmp_path):
    """Three gunicorn workers, 100 bad tokens from one address released together: exactly the limit
    are checked (401), every other one is a 429 (the cache's read-then-write counter let 64 through)."""
    import secrets
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from tests.live import running_registry

    env = {
        "REGISTRY_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "REGISTRY_ALLOWED_HOSTS": "registry.example.com",
        "REGISTRY_SSL_REDIRECT": "false",
        "REGISTRY_AUTH_FAILURES_PER_MINUTE": "20",
    }
    with running_registry(tmp_path, extra_env=env, workers=3) as base:
        barrier = threading.Barrier(100)

        def guess(n: int) -> int:
            barrier.wait()
            headers = {"Authorization": f"Bearer mvr_guess{n}"}
            return requests.get(f"{base}/models", headers=headers, timeout=60).status_code

        with ThreadPoolExecutor(100) as pool:
            codes = list(pool.map(guess, range(100)))
    assert sorted(set(codes)) == [401, 429], codes
    assert codes.count(401) == 20, codes.count(401)
