"""The admin's "Compare selected versions", clicked in headless Chromium: the comparison page shows the
versions side by side with the best value of each metric marked (by its direction), the differences
from the baseline, and what is not drop-in; and a plain (non-browser) check that a selection outside 2-20
is refused with a message."""

from __future__ import annotations

import json

import pytest

from tests import test_admin_browser as console
from tests.conftest import deployed
from tests.test_admin_browser import assert_png, csp_violations, log_in, run_action, sideways_overflow, wait_for

# The browser test module's fixtures: a headless Chromium, a superuser, where screenshots go.
browser, engineer, screenshots = console.browser, console.engineer, console.screenshots

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("browser")]


def test_compare_versions_from_the_list(browser, live_server, engineer, api, make_model, make_version, screenshots):
    from selenium.webdriver.common.by import By

    model = make_model("resnet50")
    v1 = make_version(model, "v1", data=b"one", accuracy="0.91", metrics=json.dumps({"val_loss": 0.3, "auc": 0.8}))
    v2 = make_version(
        model,
        "v2",
        data=b"two",
        accuracy="0.93",
        metrics=json.dumps({"val_loss": 0.35, "auc": 0.8}),
        training_config=json.dumps({"lr": 0.01}),
        output_shape="[1,10]",
    )
    deployed(api, model, "v1", "production")
    deployed(api, model, "v1", "staging")
    long_named = make_model("imagenet-classifier-resnet50-finetuned")
    make_version(long_named, "2026.11.28-rc1", data=b"three", metrics=json.dumps({"top5": 0.97, "ece": 0.02}))
    log_in(browser, live_server, engineer)
    browser.get(f"{live_server.url}/admin/models_app/modelversion/")
    wait_for(browser, "#result_list")
    # The version list fits the 1400 px window (no sideways scrolling) and says where versions are deployed.
    overflow = sideways_overflow(browser)
    assert overflow <= 0, f"the version list is {overflow} px wider than its place in the window"
    assert "deployed to" in browser.find_element(By.CSS_SELECTOR, "#result_list thead").text.lower()
    browser.save_screenshot(str(screenshots / "version-list.png"))
    run_action(browser, [v1.pk, v2.pk], "compare")
    table = wait_for(browser, "#registry-comparison")
    assert "versions=resnet50:v1,resnet50:v2" in browser.current_url
    headers = [th.text.lower() for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert headers[1:] == ["resnet50:v1 (baseline)", "resnet50:v2"]
    rows = {
        row.find_element(By.TAG_NAME, "th").text.split(" (")[0]: row
        for row in table.find_elements(By.CSS_SELECTOR, "tr.registry-metric")
    }
    assert list(rows) == ["accuracy", "auc", "val_loss"]

    def best(name: str) -> list[str]:
        cells = rows[name].find_elements(By.TAG_NAME, "td")
        return [str(i + 1) for i, cell in enumerate(cells) if "registry-best" in (cell.get_attribute("class") or "")]

    assert best("accuracy") == ["2"]  # higher is better
    assert best("val_loss") == ["1"]  # lower is better: a loss
    assert best("auc") == []  # a tie marks nothing
    accuracy_v2 = rows["accuracy"].find_elements(By.TAG_NAME, "td")[1]
    assert accuracy_v2.text == "0.93 (+0.02, +2.2%)"
    loss_v2 = rows["val_loss"].find_elements(By.TAG_NAME, "td")[1]
    assert loss_v2.text == "0.35 (+0.05, +16.7%)" and "registry-worse" in loss_v2.find_element(
        By.TAG_NAME, "span"
    ).get_attribute("class")
    # Bold, on the success colour: the best value stands out.
    weight = browser.execute_script("return getComputedStyle(arguments[0]).fontWeight", accuracy_v2)
    assert int(weight) >= 700
    others = wait_for(browser, "#registry-compatibility").text
    assert "no: output shape" in others and "+ lr = 0.01" in others
    browser.save_screenshot(str(screenshots / "compare.png"))
    assert_png(screenshots / "compare.png")

    # The version's HISTORY: its audit events, though it was registered through the API.
    browser.get(f"{live_server.url}/admin/models_app/modelversion/{v2.pk}/history/")
    history = wait_for(browser, "#registry-history")
    assert "create" in history.text and "resnet50:v2" in history.text
    browser.save_screenshot(str(screenshots / "version-history.png"))
    assert_png(screenshots / "version-history.png")
    assert csp_violations(browser) == []


def test_compare_needs_two_to_twenty_versions(admin_client, make_model, make_version):
    model = make_model("one")
    version = make_version(model, "v1")
    response = admin_client.post(
        "/admin/models_app/modelversion/",
        {"action": "compare", "_selected_action": [version.pk]},
        follow=True,
    )
    assert "Select 2 to 20 versions to compare them." in response.content.decode()
    response = admin_client.get("/admin/models_app/modelversion/compare/?versions=one:v1,one:v9", follow=True)
    assert "Version &#x27;v9&#x27; of model &#x27;one&#x27; not found." in response.content.decode()
