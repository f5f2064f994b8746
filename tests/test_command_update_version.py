"""manage.py update_version: a version's metadata changed from the shell through services.update_version,
the function PATCH /models/{m}/versions/{v} and the admin call: merge patches for metrics and tags, a
point of history for a changed metric, the same refusals, one audit event."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from models_app import open_metadata
from models_app.models import MetricPoint
from registry_site.models import AuditEvent
from tests.command_support import assert_argument_error

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("update_version", *args, stdout=out)
    return out.getvalue()


def test_metrics_tags_lineage_and_notes_change_as_through_the_api(world, api):
    api.patch("/models/resnet/versions/v2", {"metrics": {"auc": 0.8, "old": 1.0}}, format="json")
    out = run(
        "resnet",
        "v2",
        "--accuracy",
        "0.93",
        "--metrics",
        '{"auc": 0.91, "old": null}',
        "--tags",
        '{"team": "vision"}',
        "--training-run",
        "run-42",
        "--release-notes",
        "Better on night shots.",
    )
    assert out == "Updated resnet:v2 (accuracy, metrics, release_notes, tags, training_run).\n"
    world.v2.refresh_from_db()
    assert (world.v2.accuracy, world.v2.training_run, world.v2.release_notes) == (
        0.93,
        "run-42",
        "Better on night shots.",
    )
    assert open_metadata.current(world.v2, "metrics") == {"auc": 0.91}
    assert open_metadata.current(world.v2, "tags") == {"team": "vision"}
    body = api.get("/models/resnet/versions/v2").json()
    assert body["metrics"] == {"auc": 0.91} and body["tags"] == {"team": "vision"} and body["accuracy"] == 0.93
    registration = MetricPoint.objects.filter(version=world.v2, source="registration")
    assert {(p.name, p.value) for p in registration.filter(name__in=["accuracy", "auc"])} >= {
        ("accuracy", 0.93),
        ("auc", 0.91),
    }
    event = AuditEvent.objects.filter(action="update", object_repr="resnet:v2").latest("id")
    assert event.via == "command" and event.changes["accuracy"] == [None, 0.93]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["resnet", "v2", "--accuracy", "1.5"], "accuracy"),
        (["resnet", "v2", "--metrics", '{"bad name": 1}'], "metrics"),
        (["resnet", "v2", "--metrics", "{not json"], "metrics"),
        (["resnet", "v1", "--status", "archived"], "is the default"),
        (["resnet", "v2"], "Nothing to change"),
        (["resnet", "v9", "--accuracy", "0.5"], "v9"),
    ],
)
def test_refusals_name_the_field_and_change_nothing(world, args, match):
    before = AuditEvent.objects.count()
    assert_argument_error("update_version", args, match)
    world.v2.refresh_from_db()
    assert world.v2.accuracy is None and AuditEvent.objects.count() == before
