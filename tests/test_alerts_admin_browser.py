"""The admin's alert list in headless Chromium at 1400 px: a firing alert of a long-named model and rule
is listed with its rule, version, severity, state, value and start, without sideways scrolling."""

from __future__ import annotations

import pytest

from deployments_app import alerts
from models_app import metric_history
from registry_site.permissions import Operator
from tests import test_admin_browser as console
from tests.conftest import deployed
from tests.test_admin_browser import assert_png, log_in, sideways_overflow, wait_for

browser, engineer, screenshots = console.browser, console.engineer, console.screenshots

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("browser")]


def test_the_alert_list_fits_the_window(browser, live_server, engineer, api, make_model, make_version, screenshots):
    from selenium.webdriver.common.by import By

    model = make_model("imagenet-classifier-resnet50-finetuned")
    version = make_version(model, "2026.11.28-rc1", data=b"weights", accuracy="0.93")
    deployed(api, model, "2026.11.28-rc1", "production")
    alerts.create_rule(
        model=model,
        values={
            "name": "production accuracy floor for the night shift",
            "metric": "accuracy",
            "source": "production",
            "window_points": 1,
            "condition": "below",
            "threshold": 0.8,
            "target": "production",
            "severity": "critical",
        },
        acting_user=Operator(),
    )
    metric_history.record_points(version=version, points=[{"name": "accuracy", "value": 0.71, "source": "production"}])
    alerts.evaluate_all()

    log_in(browser, live_server, engineer)
    browser.get(f"{live_server.url}/admin/deployments_app/alert/")
    wait_for(browser, "#result_list")
    overflow = sideways_overflow(browser)
    assert overflow <= 0, f"the alert list is {overflow} px wider than its place in the window"
    row = browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr").text
    for shown in (
        "production accuracy floor",
        "imagenet-classifier-resnet50-finetuned:2026.11.28-rc1",
        "critical",
        "Firing",
        "0.71",
    ):
        assert shown in row.replace("\n", " "), (shown, row)
    path = screenshots / "alert-list.png"
    browser.save_screenshot(str(path))
    assert_png(path)
