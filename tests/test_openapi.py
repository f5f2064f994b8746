"""The OpenAPI schema is how script authors discover the API: it must render, validate, describe every
route, and every route it lists must answer."""

import re

import pytest
from openapi_spec_validator import validate

from deployments_app import alerts, experiments
from deployments_app.services import deploy_version
from models_app import metric_history, services
from registry_site import webhooks
from registry_site.models import AuditEvent, WebhookDelivery
from registry_site.permissions import Operator


@pytest.fixture
def schema(api):
    response = api.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


@pytest.mark.django_db
def test_schema_is_valid_openapi_3(schema):
    validate(schema)
    assert schema["openapi"].startswith("3.")


@pytest.mark.django_db
def test_schema_lists_the_seed_routes(schema):
    for path in [
        "/health",
        "/models",
        "/models/{name}",
        "/models/{name}/versions",
        "/models/{name}/versions/{version}",
        "/models/{name}/versions/default",
        "/deploy",
    ]:
        assert path in schema["paths"], path


@pytest.mark.django_db
def test_every_route_in_the_schema_answers(schema, api, make_version, django_capture_on_commit_callbacks):
    version = make_version(version="v1.0.0")
    deployment = deploy_version(version=version, target="staging", acting_user=Operator()).deployment
    subscription = webhooks.create_subscription(url="http://127.0.0.1:9/x", events=["*"])
    services.create_model(name="announced", model_type="classification")  # a delivery to look at
    delivery = WebhookDelivery.objects.latest("id")
    second = make_version(version.model, version="v2.0.0")
    experiment = experiments.create_experiment(
        model=version.model,
        target="staging",
        name="schema",
        variants=[
            experiments.VariantSpec("v1.0.0", 5000, is_control=True),
            experiments.VariantSpec(second.version, 5000),
        ],
        acting_user=Operator(),
    )
    metric_history.record_points(version=version, points=[{"name": "auc", "value": 0.9}])
    rule = alerts.create_rule(
        model=version.model,
        values={"name": "floor", "metric": "auc", "window_points": 5, "condition": "below", "threshold": 0.95},
        acting_user=Operator(),
    )
    with django_capture_on_commit_callbacks(execute=True):  # the alert fires once the point commits
        metric_history.record_points(version=version, points=[{"name": "auc", "value": 0.5}])
    alert = rule.alerts.get()
    event = AuditEvent.objects.latest("id")
    values = {
        "name": version.model.name,
        "version": version.version,
        "id": str(deployment.pk),
    }
    # Routes whose GET needs a query parameter.
    queries = {
        "/models/{name}/targets/{target}/assignment": {"key": "unit-1"},
        "/compare": {"versions": f"{version.model.name}:{version.version},{version.model.name}:default"},
        "/models/{name}/compare": {"versions": f"{version.version},default"},
    }
    calls = [(path, method) for path, operations in schema["paths"].items() for method in operations]
    # Deletes last and deepest first, so they do not take away what the other calls use.
    # Reads first: a write (a target's rollback) may take away what a read (that target's file) serves.
    calls.sort(key=lambda call: (call[1] == "delete", call[1] != "get", -call[0].count("/")))
    for path, method in calls:
        ids = {**values, "id": str(event.pk)} if path.startswith("/audit/") else values
        if path.startswith("/webhooks/"):
            ids = {**ids, "id": str(subscription.pk), "delivery": str(delivery.pk)}
        if path.startswith("/experiments/"):
            ids = {**ids, "id": str(experiment.pk)}
        if path.startswith("/alerts/"):
            ids = {**ids, "id": str(alert.pk)}
        if "/alert-rules/" in path:
            ids = {**ids, "id": str(rule.pk)}
        if path.startswith("/targets/") or "{target}" in path:
            ids = {**ids, "target": "staging", **({"name": "staging"} if path.startswith("/targets/") else {})}
        url = re.sub(r"\{(\w+)\}", lambda m, ids=ids: ids[m.group(1)], path)
        if method == "get":
            response = api.get(url, queries.get(path, {}))
            assert response.status_code == 200, (url, response.status_code)
        else:
            # An empty body: the route exists and accepts it, or refuses it cleanly.
            response = getattr(api, method)(url, {}, format="json")
            assert response.status_code not in (404, 405) and response.status_code < 500, (
                method,
                url,
                response.status_code,
            )


@pytest.mark.django_db
def test_docs_page_works_offline(client, settings):
    settings.WHITENOISE_AUTOREFRESH = False  # as in production: static files listed once, at start
    response = client.get("/docs", HTTP_HOST="localhost")
    assert response.status_code == 200
    html = response.content.decode()
    assert not re.search(r"""(src|href)=["']https?://""", html), "the docs page must not load from a CDN"
    assets = re.findall(r"""(?:src|href)=["'](/static/[^"']+)["']""", html)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert client.get(asset, HTTP_HOST="localhost").status_code == 200, asset
