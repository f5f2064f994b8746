"""The console's charts (issue #9 §5, issue #11 §4) drawn in headless Chromium: a version's metric history
with its deploy and rollback marked, a metric across a model's versions, the comparison's grouped bars
and an experiment's variants over time. Each chart must have drawn: its SVG is on the page with a size,
and holds the lines, points, markers and bars its data make, under the Content-Security-Policy."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from deployments_app import experiments
from deployments_app import services as deployment_services
from deployments_app.models import Deployment
from models_app import metric_history
from registry_site.permissions import Operator
from tests import test_admin_browser as console
from tests.conftest import deployed
from tests.test_admin_browser import assert_png, csp_violations, log_in, wait_for

browser, engineer, screenshots = console.browser, console.engineer, console.screenshots

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("browser")]


def drawn(browser, css: str) -> dict:
    """The chart's rendered size and what it holds."""
    return browser.execute_script(
        "const svg = document.querySelector(arguments[0]); const box = svg.getBoundingClientRect();"
        "const count = (s) => svg.querySelectorAll(s).length;"
        "return {width: box.width, height: box.height, lines: count('g.registry-series path'),"
        " points: count('circle.registry-point'), markers: count('g.registry-marker'),"
        " bars: count('rect.registry-bar'), groups: count('g.registry-group'),"
        " pathLength: Math.max(0, ...[...svg.querySelectorAll('g.registry-series path')]"
        "   .map((p) => p.getTotalLength()))}",
        css,
    )


def test_the_four_charts_draw(browser, live_server, engineer, api, make_model, make_version, screenshots):
    now = timezone.now()
    model = make_model("resnet50")
    versions = [
        make_version(
            model,
            f"v{i}",
            data=f"weights {i}".encode(),
            accuracy=str(0.80 + 0.03 * i),
            metrics=json.dumps({"val_loss": 0.5 - 0.05 * i, "latency_ms": 100 + 10 * i}),
        )
        for i in range(1, 5)
    ]
    v2 = versions[1]

    # v2's history: eval and production lines of accuracy over two days, deployed then rolled back.
    def ago(hours: int) -> str:
        return (now - timedelta(hours=hours)).isoformat()

    points = [
        {"name": "accuracy", "value": 0.86 + 0.01 * (h % 5), "source": "eval", "timestamp": ago(48 - h)}
        for h in range(0, 48, 2)
    ] + [
        {"name": "accuracy", "value": 0.84 + 0.005 * (h % 7), "source": "production", "timestamp": ago(48 - h)}
        for h in range(20, 48)
    ]
    metric_history.record_points(version=v2, points=points)
    deployment = Deployment.objects.get(pk=deployed(api, model, "v2", "production")["id"])
    deployment_services.rollback_deployment(deployment=deployment, reason="accuracy dropped")
    Deployment.objects.filter(pk=deployment.pk).update(
        deployed_at=now - timedelta(hours=28), rollback_at=now - timedelta(hours=6)
    )

    log_in(browser, live_server, engineer)

    # A version's page: a chart per metric; accuracy has the registration, eval and production lines.
    browser.get(f"{live_server.url}/admin/models_app/modelversion/{v2.pk}/change/")
    wait_for(browser, ".field-metric_charts svg")
    charts = browser.find_elements("css selector", ".field-metric_charts svg.registry-chart")
    assert [c.get_attribute("aria-label") for c in charts] == [
        "accuracy of resnet50:v2",
        "latency_ms of resnet50:v2",
        "val_loss of resnet50:v2",
    ]
    accuracy = drawn(browser, ".field-metric_charts svg.registry-chart")
    assert accuracy["width"] > 600 and accuracy["height"] > 200
    assert accuracy["lines"] == 3 and accuracy["points"] == 1 + 24 + 28 and accuracy["markers"] == 2
    assert accuracy["pathLength"] > 300  # the lines drew across the plot, not just their points
    latest = browser.find_element("css selector", ".field-metric_history table").text
    assert "production" in latest and "All points (API)" in browser.page_source
    browser.execute_script("document.querySelector('.field-metric_charts').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "charts-version.png"))
    assert_png(screenshots / "charts-version.png")

    # The model's page: accuracy across its versions by default, the other metrics a click away.
    browser.get(f"{live_server.url}/admin/models_app/registeredmodel/{model.pk}/change/")
    bars = drawn(browser, ".field-metric_across_versions svg.registry-chart")
    assert bars["width"] > 600 and bars["height"] > 150 and bars["bars"] == 4
    browser.find_element("link text", "latency_ms").click()
    wait_for(browser, 'svg.registry-chart[aria-label="latency_ms across the versions of resnet50"]')
    assert drawn(browser, ".field-metric_across_versions svg.registry-chart")["bars"] == 4
    browser.execute_script("document.querySelector('.field-metric_across_versions').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "charts-model.png"))
    assert_png(screenshots / "charts-model.png")

    # The comparison: a group per metric, a bar per version in each.
    refs = ",".join(f"resnet50:{v.version}" for v in versions[:3])
    browser.get(f"{live_server.url}/admin/models_app/modelversion/compare/?versions={refs}")
    grouped = drawn(browser, "#registry-comparison-chart svg")
    assert grouped["width"] > 600 and grouped["height"] > 150
    assert grouped["groups"] == 3 and grouped["bars"] == 9  # accuracy, latency_ms, val_loss x 3 versions
    browser.execute_script("document.querySelector('#registry-comparison-chart').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "charts-compare.png"))
    assert_png(screenshots / "charts-compare.png")

    # An experiment: the two variants' conversion rate per hour, its start marked.
    experiment = experiments.create_experiment(
        model=model,
        target="staging",
        name="ramp v4",
        variants=[
            experiments.VariantSpec("v3", 5000, "control", is_control=True),
            experiments.VariantSpec("v4", 5000, "candidate"),
        ],
        acting_user=Operator(),
    )
    experiments.start_experiment(experiment=experiment, acting_user=Operator())
    experiments.report_results(
        experiment=experiment,
        batches=[
            {
                "variant": variant,
                "exposures": 1000,
                "conversions": base + 3 * hour,
                "observed_at": now - timedelta(hours=12 - hour),
            }
            for hour in range(12)
            for variant, base in (("control", 100), ("candidate", 115))
        ],
    )
    browser.get(f"{live_server.url}/admin/deployments_app/experiment/{experiment.pk}/change/")
    lines = drawn(browser, "#registry-experiment-chart svg")
    assert lines["width"] > 600 and lines["height"] > 200
    assert lines["lines"] == 2 and lines["points"] == 24 and lines["markers"] == 1
    browser.execute_script("document.querySelector('#registry-experiment-chart').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "charts-experiment.png"))
    assert_png(screenshots / "charts-experiment.png")
    assert csp_violations(browser) == []
