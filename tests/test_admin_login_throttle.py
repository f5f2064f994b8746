"""The admin's login is limited like the API's tokens: failed logins per address and per username in a
minute (REGISTRY_LOGIN_FAILURES_PER_MINUTE), with a message that says so and how long to wait."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from registry_site.models import FailureCounter

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"


@pytest.fixture
def root(settings):
    settings.REGISTRY_LOGIN_FAILURES_PER_MINUTE = 3
    return User.objects.create_superuser("root", password="right-password")


def login(username: str, password: str, address: str = "127.0.0.1") -> tuple[Client, object]:
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})
    return client, response


def logged_in(client: Client) -> bool:
    return client.get(reverse("admin:index")).status_code == 200


def test_wrong_passwords_for_one_user_are_limited_even_from_many_addresses(root):
    for n in range(3):
        _, response = login("root", "guess", address=f"203.0.113.{n}")
        assert response.status_code == 200 and "Please enter the correct username" in response.text
    client, response = login("root", "right-password", address="198.51.100.9")
    assert "Too many failed logins for this user or from this address" in response.text
    assert "Try again in" in response.text
    assert not logged_in(client)


def test_wrong_logins_from_one_address_are_limited_whatever_the_username(root):
    for name in ("alice", "bob", "carol"):
        login(name, "guess", address="203.0.113.50")
    client, response = login("root", "right-password", address="203.0.113.50")
    assert "Too many failed logins" in response.text
    assert not logged_in(client)
    # Another address and the right password: served.
    client, _ = login("root", "right-password", address="198.51.100.10")
    assert logged_in(client)


def test_successful_logins_do_not_count(root):
    for _ in range(5):
        client, _ = login("root", "right-password")
        assert logged_in(client)


def test_the_limit_lasts_one_minute(root):
    for _ in range(3):
        login("root", "guess")
    _, response = login("root", "right-password")
    assert "Too many failed logins" in response.text
    FailureCounter.objects.filter(key__startswith="login-failures:").update(
        window_started=timezone.now() - timedelta(seconds=61)
    )
    client, _ = login("root", "right-password")
    assert logged_in(client)
