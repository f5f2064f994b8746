"""The console basics an ML engineer trips on (issue #9, section 5): HISTORY shows the audit events of an
object whatever door changed it, VIEW SITE leads to the API's documentation, and a model's page shows
every metric of its latest versions with a link comparing them."""

from __future__ import annotations

import html as html_module
import json
import re

import pytest

from models_app.models import ModelVersion
from tests.conftest import deployed

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(api, make_model, make_version):
    """Changes made through the API only: Django's own admin history knows nothing of them."""
    model = make_model("vision")
    make_version(model, "1.0", data=b"one", metrics=json.dumps({"auc": 0.9}))
    make_version(model, "2.0", data=b"two", accuracy="0.7", metrics=json.dumps({"val_loss": 0.2}))
    assert api.patch("/models/vision/versions/2.0", {"status": "approved"}, format="json").status_code == 200
    first = deployed(api, model, "1.0", "production")
    second = deployed(api, model, "2.0", "production")
    assert api.post(f"/deployments/{second['id']}/rollback", {"reason": "worse"}, format="json").status_code == 200
    other = make_model("other")
    make_version(other, "1.0", data=b"three")
    return model, first["id"], second["id"]


def rows(response) -> list[dict[str, str]]:
    """The history table's rows, by column: when, who, via, action, object, changes."""
    assert response.status_code == 200
    html = response.content.decode()
    body = html.split('<table id="registry-history">', 1)[1].split("</table>", 1)[0]
    columns = ("when", "who", "via", "action", "object", "changes")
    found = []
    for row in body.split("<tr>")[2:]:
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)
        text = [html_module.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell))).strip() for cell in cells]
        found.append(dict(zip(columns, text, strict=True)))
    return found


def actions(response) -> list[str]:
    return [row["action"] for row in rows(response)]


def test_a_models_history_is_its_audit_trail(admin_client, history):
    model, _, _ = history
    seen = rows(admin_client.get(f"/admin/models_app/registeredmodel/{model.pk}/history/"))
    assert [row["action"] for row in seen] == ["rollback", "deploy", "deploy", "update", "create", "create", "create"]
    assert [(row["who"], row["via"]) for row in seen[:-1]] == [("anonymous", "api")] * 6
    assert seen[-1]["object"] == "vision" and not any("other" in row["object"] for row in seen)


def test_a_versions_history_has_its_changes_and_deployments(admin_client, history):
    model, _, _ = history
    version = ModelVersion.objects.get(model=model, version="2.0")
    seen = rows(admin_client.get(f"/admin/models_app/modelversion/{version.pk}/history/"))
    assert [row["action"] for row in seen] == ["rollback", "deploy", "update", "create"]
    assert seen[2]["changes"] == "status : ['training', 'approved']"
    assert seen[0]["object"] == "vision:2.0 -> production" and "reason : worse" in seen[0]["changes"]


def test_a_deployments_history_names_what_replaced_it(admin_client, history):
    _, first, second = history
    # Its deploy, the deploy that superseded it, and the rollback that restored it.
    assert actions(admin_client.get(f"/admin/deployments_app/deployment/{first}/history/")) == [
        "rollback",
        "deploy",
        "deploy",
    ]
    assert actions(admin_client.get(f"/admin/deployments_app/deployment/{second}/history/")) == ["rollback", "deploy"]


def test_a_targets_history(admin_client, api):
    assert api.patch("/targets/staging", {"description": "pre-production"}, format="json").status_code == 200
    from deployments_app.models import Target

    seen = rows(admin_client.get(f"/admin/deployments_app/target/{Target.objects.get(name='staging').pk}/history/"))
    assert len(seen) == 1 and seen[0]["action"] == "update_target" and "pre-production" in seen[0]["changes"]


def test_nothing_recorded_says_so(admin_client, make_model):
    from deployments_app.models import Target

    response = admin_client.get(f"/admin/deployments_app/target/{Target.objects.get(name='canary').pk}/history/")
    assert response.status_code == 200 and "No audit event is recorded about this object." in response.content.decode()


def test_view_site_leads_to_the_docs(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert re.search(r'<a href="/docs">View site</a>', html)


def test_a_models_page_shows_every_metric_and_compares(admin_client, history):
    model, _, _ = history
    html = admin_client.get(f"/admin/models_app/registeredmodel/{model.pk}/change/").content.decode()
    table = html.split("registry-slice", 2)[2]  # the second table: latest versions (the first: active)
    headers = re.findall(r"<th>([^<]*)</th>", table.split("</thead>")[0])
    assert headers == [
        "version",
        "format",
        "status",
        "default",
        "accuracy",
        "auc",
        "val_loss",
        "size",
        "sha256",
        "created",
    ]
    assert "0.7" in table and "0.9" in table and "0.2" in table
    assert "compare/?versions=vision:1.0,vision:2.0" in html
