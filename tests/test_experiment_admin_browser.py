"""An A/B test run from the admin in headless Chromium, as an operator would: create it on the "Add
experiment" page (a refused split first), ramp the candidate up with "Change weights", pause and resume
it with the page's buttons, and conclude it from the page that shows the verdict first."""

from __future__ import annotations

import pytest

from deployments_app import experiments
from deployments_app.models import Deployment, DeploymentStatus, Experiment
from tests import test_admin_browser as console
from tests.conftest import deployed
from tests.test_admin_browser import assert_png, csp_violations, log_in, wait_for

# The browser test module's fixtures: a headless Chromium, a superuser, where screenshots go.
browser, engineer, screenshots = console.browser, console.engineer, console.screenshots

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("browser")]


def fill(driver, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.NAME, name)
    field.clear()
    field.send_keys(value)


def message_after(browser, act) -> str:
    """The success message of the page that `act` (a click that submits) leads to: the current page
    (which may show a message of its own) is waited out first, so the new page's message is the one read."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    html = browser.find_element("tag name", "html")
    act()
    WebDriverWait(browser, 15).until(expected_conditions.staleness_of(html))
    return wait_for(browser, ".messagelist .success").text


def test_create_ramp_and_conclude_an_experiment(
    browser, live_server, engineer, api, make_model, make_version, screenshots
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    model = make_model("resnet50")
    make_version(model, "v1", data=b"one")
    v2 = make_version(model, "v2", data=b"two")
    deployed(api, model, "v1", "staging")
    log_in(browser, live_server, engineer)

    # The list's "Add experiment" button, then the form: a split of 90% and 20% is refused on the variants.
    browser.get(f"{live_server.url}/admin/deployments_app/experiment/")
    wait_for(browser, ".object-tools a.addlink").click()
    wait_for(browser, "#experiment_form")
    fill(browser, "model", "resnet50")
    Select(browser.find_element(By.NAME, "target")).select_by_value("staging")
    fill(browser, "name", "v2 ramp")
    fill(browser, "min_samples", "10")
    for index, (version, name, weight) in enumerate([("v1", "control", "90"), ("v2", "candidate", "20")]):
        fill(browser, f"variants-{index}-version", version)
        fill(browser, f"variants-{index}-name", name)
        fill(browser, f"variants-{index}-weight", weight)
    browser.find_element(By.NAME, "variants-0-is_control").click()
    browser.find_element(By.NAME, "_save").click()
    error = wait_for(browser, "#experiment-variants .errorlist")
    assert "they sum to 11000" in error.text
    assert not Experiment.objects.exists()
    browser.save_screenshot(str(screenshots / "experiment-add-refused.png"))
    fill(browser, "variants-1-weight", "10")
    browser.find_element(By.NAME, "start_now").click()
    browser.save_screenshot(str(screenshots / "experiment-add.png"))
    browser.find_element(By.NAME, "_save").click()
    message = wait_for(browser, ".messagelist .success")
    experiment = Experiment.objects.get()
    assert message.text == f"Experiment {experiment.pk} (v2 ramp) is running."
    assert [b.text for b in browser.find_elements(By.CSS_SELECTOR, ".registry-tool-button")] == ["PAUSE", "STOP"]

    # Ramp the candidate from 10% to 20%.
    browser.find_element(By.LINK_TEXT, "CHANGE WEIGHTS").click()
    control, candidate = experiment.variants.order_by("id")
    wait_for(browser, f'input[name="variant_{candidate.pk}"]')
    fill(browser, f"variant_{control.pk}", "80")
    fill(browser, f"variant_{candidate.pk}", "20")
    browser.save_screenshot(str(screenshots / "experiment-weights.png"))
    submit = browser.find_element(By.CSS_SELECTOR, 'input[type="submit"]')
    assert message_after(browser, submit.click) == f"Experiment {experiment.pk}'s weights are changed."
    weights = browser.find_element(By.CSS_SELECTOR, ".field-weights").text
    assert "candidate v2 20% [0, 2000)" in weights and "control (control) v1 80% [2000, 10000)" in weights

    # The serving systems report; pause and resume with the page's buttons.
    experiments.report_results(
        experiment=experiment,
        batches=[
            {"variant": "control", "exposures": 8000, "conversions": 800},
            {"variant": "candidate", "exposures": 2000, "conversions": 260},
        ],
    )
    pause = browser.find_element(By.CSS_SELECTOR, 'button[name="pause"]')
    assert message_after(browser, pause.click) == f"Experiment {experiment.pk} is paused."
    resume = browser.find_element(By.CSS_SELECTOR, 'button[name="resume"]')
    assert message_after(browser, resume.click) == f"Experiment {experiment.pk} is running."
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.CSS_SELECTOR, ".field-weights"))
    browser.save_screenshot(str(screenshots / "experiment-page.png"))

    # Conclude: the verdict and the results first, the verdict's winner chosen, made the default.
    browser.find_element(By.LINK_TEXT, "CONCLUDE…").click()
    verdict = wait_for(browser, "#experiment-results strong")
    assert verdict.text == "Variant 'candidate' is better than the control."
    assert Select(browser.find_element(By.NAME, "winner")).first_selected_option.text == "candidate"
    browser.find_element(By.NAME, "make_default").click()
    browser.save_screenshot(str(screenshots / "experiment-conclude.png"))
    browser.find_element(By.CSS_SELECTOR, 'input[type="submit"]').click()
    message = wait_for(browser, ".messagelist .success")
    assert message.text == (
        f"Experiment {experiment.pk} concluded: candidate is deployed to staging and is the model's default version."
    )
    assert Experiment.objects.get().state == "concluded"
    active = Deployment.objects.get(model=model, deployment_target="staging", deployment_status=DeploymentStatus.ACTIVE)
    assert active.model_version == v2
    assert "Winner candidate" in browser.find_element(By.CSS_SELECTOR, ".field-decision_summary").text
    browser.save_screenshot(str(screenshots / "experiment-concluded.png"))
    for name in ("add-refused", "add", "weights", "page", "conclude", "concluded"):
        assert_png(screenshots / f"experiment-{name}.png")
    assert csp_violations(browser) == []
