"""The admin and the docs page carry a Content-Security-Policy that allows scripts from the registry
only; the docs page has no inline script for it to refuse (tests/test_admin_browser.py loads both in
Chromium and finds no violation)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/admin/login/", "/docs", "/openapi.json", "/health"])
def test_pages_carry_the_policy(client, path):
    policy = client.get(path)["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert "unsafe-eval" not in policy and "script-src 'self' 'unsafe-inline'" not in policy


def test_the_docs_page_loads_its_script_as_a_file(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "<script>" not in page.content.decode()
    script = client.get("/docs?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content
