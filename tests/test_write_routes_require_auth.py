"""Every write route of the API refuses an anonymous request in production mode, and one from a token
whose user has no role, writing nothing. The routes come from the URL configuration itself, so a route
added tomorrow is walked too: if it forgets its permissions, this test fails."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from registry_site.models import AuditEvent, WebhookDelivery, WebhookSubscription
from tests.conftest import World, registry_state, token_client, user_with_role

pytestmark = pytest.mark.django_db

WRITE_METHODS = ("post", "put", "patch", "delete")
# Not API routes: the admin has its own login (and its own tests), the schema and docs are documents,
# and the health check is meant to be open.
SKIPPED_PREFIXES = ("admin/",)
SKIPPED_ROUTES = {"openapi.json", "docs", "health"}
CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")


@dataclass(frozen=True)
class Route:
    route: str  # as written in the URLconf, e.g. "models/<str:name>/versions"
    callback: object

    @property
    def accepted_writes(self) -> tuple[str, ...]:
        actions = getattr(self.callback, "actions", None)
        if actions is not None:  # a DRF viewset: its method -> action map
            return tuple(m for m in WRITE_METHODS if m in actions)
        cls = getattr(self.callback, "cls", None) or getattr(self.callback, "view_class", None)
        if cls is not None:  # an APIView or a Django class-based view
            return tuple(m for m in WRITE_METHODS if m in cls.http_method_names and hasattr(cls, m))
        return WRITE_METHODS  # a plain function view may accept anything


def walk(resolvers=None, prefix: str = "") -> list[Route]:
    routes = []
    for entry in (resolvers or get_resolver()).url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            if route.startswith(SKIPPED_PREFIXES):
                continue
            routes.extend(walk(entry, route))
        elif isinstance(entry, URLPattern):
            routes.append(Route(route, entry.callback))
    return routes


def api_routes() -> list[Route]:
    return [r for r in walk() if r.route not in SKIPPED_ROUTES and not r.route.startswith(SKIPPED_PREFIXES)]


@pytest.fixture
def world(world, production) -> World:
    """The shared world; then production mode, with reads open: that must not open any write."""
    production.REGISTRY_PUBLIC_READ = True
    subscription = WebhookSubscription.objects.create(
        url="http://127.0.0.1:9/x", secret="whsec_" + "A" * 32, events=["*"]
    )
    WebhookDelivery.objects.create(
        subscription=subscription,
        message_id="msg_walk",
        event_type="model.created",
        ordering_key="model:resnet",
        body="{}",
    )
    return world


def url_for(route: str, world) -> str:
    """The route with plausible values: an existing model, version, deployment or audit event."""

    def value(match: re.Match) -> str:
        parameter = match.group("parameter")
        if parameter == "name":
            return "staging" if route.startswith("targets/") else "resnet"
        if parameter == "target":
            return "staging"
        if parameter == "version":
            return "v3"  # has no file yet: an upload would succeed
        if route.startswith("webhooks/"):
            if parameter == "pk":
                return str(WebhookSubscription.objects.latest("id").pk)
            if parameter == "delivery":
                return str(WebhookDelivery.objects.latest("id").pk)
        if parameter == "pk":
            # The newest audit event (refused writes record none) or the world's deployment.
            return str(AuditEvent.objects.latest("id").pk if route.startswith("audit") else world.staging.pk)
        raise AssertionError(f"no plausible value for <{parameter}> in {route}: teach this test")

    return "/" + CONVERTER.sub(value, route)


def body_for(route: str, method: str) -> tuple[object, str]:
    """A body that would succeed if the route let the request through."""
    if route.endswith("/file"):
        return b"weights-bytes", "application/octet-stream"
    if route == "deploy":
        return (
            '{"model_name": "resnet", "version": "v2", "deployment_target": "production"}',
            "application/json",
        )
    if route == "models":
        return '{"name": "intruder", "model_type": "audio"}', "application/json"
    if route == "webhooks":
        return '{"url": "http://127.0.0.1:9/y", "events": ["*"]}', "application/json"
    if route.startswith("webhooks/"):
        return ('{"description": "changed by the walk"}' if route.count("/") == 1 else "{}"), "application/json"
    if route == "targets":
        return '{"name": "intruder"}', "application/json"
    if route.startswith("targets/"):
        return '{"description": "changed by the walk"}', "application/json"
    if route.endswith("versions"):
        return '{"version": "v9", "format": "onnx"}', "application/json"
    if route.endswith("rollback"):
        return '{"reason": "x"}', "application/json"
    if route.startswith("models/") and route.count("/") == 1:
        return '{"description": "changed"}', "application/json"
    return '{"accuracy": 0.5}', "application/json"


def test_the_walk_finds_the_write_routes():
    routes = {r.route: r.accepted_writes for r in api_routes()}
    assert len(routes) >= 12, routes
    # Walking must see the routes that matter most, each with the methods it serves.
    assert routes["deploy"] == ("post",)
    assert routes["models"] == ("post",)
    assert set(routes["models/<segment:name>"]) == {"patch", "delete"}
    assert routes["models/<segment:name>/versions/<segment:version>/file"] == ("put",)
    assert routes["models/<segment:name>/versions/<segment:version>/default"] == ("post",)
    assert routes["deployments/<int:pk>/rollback"] == ("post",)
    assert routes["audit"] == () and routes["audit/<int:pk>"] == ()
    writes = sum(len(methods) for methods in routes.values())
    assert writes >= 9, routes
    # And the admin's own routes are not among them.
    assert not any(route.startswith("admin/") for route in routes)


def _refused_everywhere(client: APIClient, world, storage_dir, expected: int) -> list[str]:
    checked = []
    for route in api_routes():
        url = url_for(route.route, world)
        for method in WRITE_METHODS:
            body, content_type = body_for(route.route, method)
            before = registry_state(storage_dir)
            response = client.generic(method.upper(), url, body, content_type=content_type)
            what = f"{method.upper()} {url}"
            if method in route.accepted_writes:
                assert response.status_code == expected, (what, response.status_code, response.content[:300])
                checked.append(what)
            else:
                # A method the route does not serve: refused one way or another, never served.
                assert response.status_code in (401, 403, 405), (what, response.status_code)
            assert registry_state(storage_dir) == before, f"{what} changed something"
    return checked


def test_every_write_route_refuses_anonymous_requests(world, storage_dir):
    checked = _refused_everywhere(APIClient(), world, storage_dir, 401)
    assert "POST /deploy" in checked
    assert "PUT /models/resnet/versions/v3/file" in checked
    assert "POST /models" in checked
    assert len(checked) >= 9, checked


def test_every_write_route_refuses_a_token_without_a_role(world, storage_dir):
    client = token_client(user_with_role("nobody", role=None))
    checked = _refused_everywhere(client, world, storage_dir, 403)
    assert len(checked) >= 9


def test_every_write_route_refuses_the_viewer_role(world, storage_dir, persona):
    checked = _refused_everywhere(persona("viewer").client, world, storage_dir, 403)
    assert len(checked) >= 9


def test_the_bodies_used_would_succeed_with_a_role(world, storage_dir, settings):
    """The refusals above mean something only if the same requests pass when allowed: run them in local
    mode and see them write."""
    settings.LOCAL_MODE = True
    client = APIClient()
    succeeded = []
    # v3's file first: only a version with a file can become the default.
    for route in sorted(api_routes(), key=lambda route: not route.route.endswith("/file")):
        for method in route.accepted_writes:
            if method == "delete":
                continue  # would remove what later routes use
            url = url_for(route.route, world)
            body, content_type = body_for(route.route, method)
            before = registry_state(storage_dir)
            response = client.generic(method.upper(), url, body, content_type=content_type)
            if 200 <= response.status_code < 300:
                assert registry_state(storage_dir) != before
                succeeded.append(f"{method.upper()} {url}")
    for expected in (
        "POST /models",
        "PUT /models/resnet/versions/v3/file",
        "POST /deploy",
        "PATCH /models/resnet",
        "POST /models/resnet/versions",
        "PATCH /models/resnet/versions/v3",
        "POST /models/resnet/versions/v3/default",
        "POST /targets",
        "PATCH /targets/staging",
        "POST /models/resnet/targets/staging/rollback",
        "POST /webhooks",
    ):
        assert expected in succeeded, succeeded
