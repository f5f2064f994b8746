"""manage.py update_model: a model's description, type, model card and metric directions changed from the
shell through services.update_model, the function PATCH /models/{m} and the admin call."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from registry_site.models import AuditEvent
from tests.command_support import assert_argument_error

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("update_model", *args, stdout=out)
    return out.getvalue()


def test_the_model_card_and_directions_from_the_shell(world, api, tmp_path):
    card = tmp_path / "README.md"
    card.write_text("# ResNet\n\nTrained on *ImageNet*.\n", encoding="utf-8")
    out = run(
        "resnet", "--readme-file", str(card), "--metric-directions", '{"ece": "lower"}', "--description", "Vision"
    )
    assert out == "Updated resnet (description, metric_directions, readme).\n"
    body = api.get("/models/resnet").json()
    assert body["readme"] == "# ResNet\n\nTrained on *ImageNet*.\n"
    assert body["metric_directions"] == {"ece": "lower"} and body["description"] == "Vision"
    event = AuditEvent.objects.filter(action="update", object_type="model").latest("id")
    assert event.via == "command" and "readme" in event.changes
    run("resnet", "--inactive")
    assert api.get("/models/resnet").json()["is_active"] is False


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["resnet", "--metric-directions", '{"ece": "down"}'], "metric_directions"),
        (["resnet", "--model-type", "teapot"], "model_type"),
        (["resnet", "--readme-file", "/nonexistent.md"], "--readme-file: cannot read"),
        (["resnet"], "Nothing to change"),
        (["nope", "--description", "x"], "nope"),
    ],
)
def test_refusals_name_the_field_and_change_nothing(world, args, match):
    assert_argument_error("update_model", args, match)
    world.model.refresh_from_db()
    assert world.model.metric_directions == {} and world.model.readme == ""
