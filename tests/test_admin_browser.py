"""The admin console in a real headless Chromium against a live server: login, styled pages (the admin's
CSS is served), and actions run by clicking, as an ML engineer uses them.

Needs the Debian packages chromium and chromium-driver (.ci/run installs them). Without them the tests
skip, unless REQUIRE_BROWSER=1 (CI), where a missing browser is a failure rather than a silent skip.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import requests

from deployments_app.models import Deployment
from models_app.models import ModelVersion

# transaction=True (live_server needs it anyway) lets pytest-django run these after the other database
# tests: the flush that ends a transactional test also empties the groups the migrations made.
# One live server per xdist worker (pytest-django's is session-scoped): keep these on one worker.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("browser")]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the suite may run as root (CI containers), where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--window-size=1400,1000",
)
PASSWORD = "correct horse battery staple"
# The admin's header colour (--header-bg in admin/css/base.css): seen only if the stylesheet loaded.
ADMIN_HEADER_BG = "rgb(65, 118, 144)"


def _unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}; REQUIRE_BROWSER=1 makes this a failure instead of a skip.", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -r requirements-dev.txt)")
    chromium = shutil.which("chromium")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        _unavailable("Chromium is not installed (apt-get install chromium chromium-driver)")

    options = webdriver.ChromeOptions()
    # Both paths given, so Selenium Manager never tries to download a browser or a driver.
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    # The console, where Chromium reports what the Content-Security-Policy refused (csp_violations).
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    """Where screenshots go: ADMIN_SCREENSHOT_DIR to keep them for a look, else the test's tmp folder."""
    folder = Path(os.environ.get("ADMIN_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def engineer(django_user_model):
    return django_user_model.objects.create_superuser("ml-engineer", "ml@example.com", PASSWORD)


def wait_for(driver, css: str, timeout: float = 15):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))


def log_in(driver, live_server, user) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{live_server.url}/admin/login/?next=/admin/")
    driver.find_element(By.ID, "id_username").send_keys(user.username)
    driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    wait_for(driver, "#user-tools")
    assert driver.current_url == f"{live_server.url}/admin/"


def sideways_overflow(driver) -> int:
    """How many pixels a change list is wider than its place in the window (0 or less: it fits)."""
    return driver.execute_script(
        "const r = document.querySelector('#changelist .results');"
        "return Math.max(document.documentElement.scrollWidth - window.innerWidth, r.scrollWidth - r.clientWidth)"
    )


def csp_violations(driver) -> list[str]:
    """What the page's Content-Security-Policy refused since the last call, from the browser's console."""
    return [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]]


def run_action(driver, version_pks: list[int], action: str) -> None:
    """Tick rows on the versions changelist, choose an action and press Go."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for pk in version_pks:
        driver.find_element(By.CSS_SELECTOR, f'input[name="_selected_action"][value="{pk}"]').click()
    Select(driver.find_element(By.NAME, "action")).select_by_value(action)
    driver.find_element(By.CSS_SELECTOR, 'button[name="index"]').click()


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000, "a styled admin page does not fit in so few bytes"


def test_browse_the_admin_styled_and_make_a_version_default(
    browser, live_server, engineer, make_model, make_version, screenshots
):
    from selenium.webdriver.common.by import By

    model = make_model(name="resnet50", description="ResNet-50 image classifier")
    v1 = make_version(model, "v1.0.0", data=b"first weights", accuracy="0.91")
    v2 = make_version(model, "v1.1.0", data=b"second weights", accuracy="0.93")
    log_in(browser, live_server, engineer)

    # The models list, styled: the stylesheet the page links to is served, and applied.
    browser.get(f"{live_server.url}/admin/models_app/registeredmodel/")
    row = wait_for(browser, "#result_list tbody tr")
    assert "resnet50" in row.text and "v1.0.0" in row.text
    header_bg = browser.execute_script("return getComputedStyle(document.getElementById('header')).backgroundColor")
    assert header_bg == ADMIN_HEADER_BG
    stylesheets = [
        link.get_attribute("href") for link in browser.find_elements(By.CSS_SELECTOR, 'link[rel="stylesheet"]')
    ]
    # admin/css/base.css, or its hashed name once collectstatic has built the manifest.
    base_css = next(href for href in stylesheets if re.search(r"/admin/css/base(\.[0-9a-f]{12})?\.css$", href))
    response = requests.get(base_css, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/css")
    browser.save_screenshot(str(screenshots / "models-changelist.png"))
    assert_png(screenshots / "models-changelist.png")

    # A version's page: its file facts, read-only.
    browser.get(f"{live_server.url}/admin/models_app/modelversion/{v1.pk}/change/")
    checksum = wait_for(browser, ".field-checksum_full code")
    assert checksum.text == v1.checksum
    assert browser.find_element(By.CSS_SELECTOR, ".field-version .readonly").text == "v1.0.0"
    browser.save_screenshot(str(screenshots / "version-change.png"))
    assert_png(screenshots / "version-change.png")

    # "Make default", by clicking.
    browser.get(f"{live_server.url}/admin/models_app/modelversion/")
    wait_for(browser, "#result_list")
    run_action(browser, [v2.pk], "make_default")
    message = wait_for(browser, ".messagelist .success")
    assert message.text == "Made resnet50:v1.1.0 the default version of resnet50 (instead of v1.0.0)."
    assert ModelVersion.objects.get(pk=v2.pk).is_default
    assert not ModelVersion.objects.get(pk=v1.pk).is_default
    browser.save_screenshot(str(screenshots / "make-default-done.png"))
    assert_png(screenshots / "make-default-done.png")
    # All of it under the Content-Security-Policy, which refused nothing the admin needs.
    assert (
        "script-src 'self'"
        in requests.get(f"{live_server.url}/admin/login/", timeout=10).headers["Content-Security-Policy"]
    )
    assert csp_violations(browser) == []


def test_the_api_docs_page_works_under_its_content_security_policy(browser, live_server, screenshots):
    """/docs is Swagger UI, served by the registry: it loads its start-up script as a file (no inline
    script, which the policy refuses), fetches the schema and lists the operations."""
    from selenium.webdriver.common.by import By

    response = requests.get(f"{live_server.url}/docs", timeout=10)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "<script>" not in response.text  # nothing inline

    browser.get(f"{live_server.url}/docs")
    wait_for(browser, ".opblock", timeout=30)
    paths = {element.text for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert "/models" in paths and "/deploy" in paths
    browser.save_screenshot(str(screenshots / "docs.png"))
    assert_png(screenshots / "docs.png")
    assert csp_violations(browser) == []


def test_deploy_a_version_through_the_intermediate_form(
    browser, live_server, engineer, make_model, make_version, screenshots
):
    from selenium.webdriver.common.by import By

    version = make_version(make_model(name="detector"), "v2", data=b"detector weights")
    log_in(browser, live_server, engineer)
    browser.get(f"{live_server.url}/admin/models_app/modelversion/")
    wait_for(browser, "#result_list")
    run_action(browser, [version.pk], "deploy_to_target")

    from selenium.webdriver.support.ui import Select

    target = Select(wait_for(browser, "select#id_target"))  # the known targets (issue #10 §3)
    assert "detector:v2" in browser.find_element(By.CSS_SELECTOR, ".registry-action-objects").text
    assert [option.text for option in target.options][:2] == ["staging", "production (protected)"]
    target.select_by_value("production")
    browser.save_screenshot(str(screenshots / "deploy-form.png"))
    # The promotion policies' checks come before the button (none apply here).
    browser.find_element(By.CSS_SELECTOR, 'input[name="check"]').click()
    assert "No promotion policy applies" in wait_for(browser, ".registry-evaluations").text
    browser.find_element(By.CSS_SELECTOR, 'input[name="apply"]').click()

    message = wait_for(browser, ".messagelist .success")
    deployment = Deployment.objects.get()
    assert message.text == f"Deployed detector:v2 to production (deployment #{deployment.pk})."
    assert (deployment.deployment_target_id, deployment.deployed_by) == ("production", "ml-engineer")
    assert_png(screenshots / "deploy-form.png")


def test_the_deploy_form_shows_the_promotion_policys_checks(
    browser, live_server, engineer, make_model, make_version, screenshots
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from deployments_app.models import Target
    from deployments_app.services import set_policy

    version = make_version(make_model(name="detector"), "v3", data=b"weights", accuracy="0.8", status="testing")
    set_policy(
        target=Target.objects.get(name="production"),
        rules={"required_status": "approved", "min_metrics": {"accuracy": 0.9}, "require_verified_file": True},
    )
    log_in(browser, live_server, engineer)
    browser.get(f"{live_server.url}/admin/models_app/modelversion/")
    wait_for(browser, "#result_list")
    run_action(browser, [version.pk], "deploy_to_target")
    assert not browser.find_elements(By.CSS_SELECTOR, 'input[name="apply"]')  # no Deploy before the checks
    Select(wait_for(browser, "select#id_target")).select_by_value("production")
    browser.find_element(By.CSS_SELECTOR, 'input[name="check"]').click()

    rows = [row.text for row in wait_for(browser, ".registry-checks").find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert rows[0].startswith("status FAIL approved testing")
    assert rows[1].startswith("min_metric accuracy FAIL 0.9 0.8")
    assert rows[2].startswith("file_verified pass")
    assert "refused by the promotion policy" in browser.find_element(By.CSS_SELECTOR, ".registry-evaluations h2").text
    browser.save_screenshot(str(screenshots / "deploy-checks.png"))
    assert_png(screenshots / "deploy-checks.png")
    assert csp_violations(browser) == []

    browser.find_element(By.CSS_SELECTOR, 'input[name="apply"]').click()
    error = wait_for(browser, ".messagelist .error")
    assert "The promotion policy of 'production' refuses detector:v3" in error.text
    assert not Deployment.objects.exists()


def test_a_missing_browser_skips_here_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception):
        _unavailable("Chromium is not installed")
    monkeypatch.setenv("REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_BROWSER=1"):
        _unavailable("Chromium is not installed")


def test_webhook_pages_render_and_add_a_subscription(browser, live_server, engineer, screenshots):
    """The subscription form (events as checkboxes), the secret shown once after saving, and a delivery's
    log, in a real browser under the Content-Security-Policy."""
    from selenium.webdriver.common.by import By

    from models_app import services
    from registry_site.models import WebhookDelivery, WebhookSubscription

    log_in(browser, live_server, engineer)
    browser.get(f"{live_server.url}/admin/registry_site/webhooksubscription/add/")
    wait_for(browser, "#id_url")
    browser.find_element(By.ID, "id_url").send_keys("http://127.0.0.1:9/hooks")
    browser.find_element(By.CSS_SELECTOR, 'input[name="events"][value="deployment.created"]').click()
    browser.find_element(By.CSS_SELECTOR, 'input[name="events"][value="model.created"]').click()
    browser.save_screenshot(str(screenshots / "webhook-add.png"))
    browser.find_element(By.CSS_SELECTOR, 'input[name="_save"]').click()
    message = wait_for(browser, ".messagelist .warning").text
    subscription = WebhookSubscription.objects.get()
    assert subscription.secret in message and subscription.events == ["model.created", "deployment.created"]
    browser.save_screenshot(str(screenshots / "webhook-saved.png"))

    services.create_model(name="announced", model_type="classification")
    delivery = WebhookDelivery.objects.get()
    browser.get(f"{live_server.url}/admin/registry_site/webhookdelivery/{delivery.pk}/change/")
    wait_for(browser, "#content")
    assert delivery.message_id in browser.page_source
    browser.save_screenshot(str(screenshots / "webhook-delivery.png"))
    assert csp_violations(browser) == []
