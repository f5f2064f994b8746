"""registry_site.row_views: a page of versions is shown from row views, without model instances (issue
#12). What a view shows is what the instance made from the same row shows: every field of the API's
answer, for versions with and without a file, named metrics and tags, deployed and in an A/B test, in
any time zone; and a view answers only what its row holds."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from rest_framework import serializers

from deployments_app import experiments
from models_app import selectors
from models_app.models import ModelVersion
from models_app.serializers import ModelVersionSerializer
from registry_site.permissions import Operator
from registry_site.row_views import RowView
from tests.conftest import deployed

pytestmark = pytest.mark.django_db


# JSON columns are parsed by orjson for views (registry_site.json_values.json_converter): what it might read
# otherwise (an integer past 64 bits, long digit runs, floats at the edge of their precision, escapes).
TRICKY_JSON = (
    '{"seed": 123456789012345678901234567890, "max": 18446744073709551615, "lr": 0.30000000000000004, '
    '"tiny": 5e-324, "big": 1.7976931348623157e308, "id": "1234567890123456789012", "text": "\\u00e9 \u2713 \\n", '
    '"nested": [1, -0.0, {"a": null, "b": [true, false]}], "empty": {}}'
)


@pytest.fixture
def registry(api, make_model, make_version):
    vision = make_model("vision")
    make_version(vision, "1.0", metrics='{"auc": 0.91, "loss": 0.125}', tags='{"team": "cv"}', accuracy="0.5")
    make_version(vision, "2.0", data=None)
    make_version(vision, "3.0", data=b"other", tags='{"stage": "rc", "team": "cv"}', is_default="true")
    make_version(vision, "4.0-beta+x", data=b"odd name")
    make_version(vision, "5.0", data=b"json", training_config=TRICKY_JSON, input_shape="[1, 3, 224, 224]")
    deployed(api, vision, "1.0", "production")
    deployed(api, vision, "1.0", "staging")
    experiment = experiments.create_experiment(
        model=vision,
        target="staging",
        name="ab",
        variants=[experiments.VariantSpec("1.0", 7000, is_control=True), experiments.VariantSpec("3.0", 3000)],
        acting_user=Operator(),
    )
    experiments.start_experiment(experiment=experiment, acting_user=Operator())
    make_version(make_model("other"), "1.0", data=b"weights")
    return vision


def _pages(model: str, size: int) -> list:
    """Every page of `model`'s versions through the prepared pages, newest first."""
    found, position = [], None
    while True:
        page = selectors.version_pages(model).order_by("-id")
        if position is not None:
            page = page.filter(id__lt=position)
        rows = page[0:size]
        found += rows
        if len(rows) < size:
            return found
        position = rows[-1].id


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/St_Johns"])
def test_a_view_shows_what_its_instance_shows(registry, zone):
    instances = list(selectors.versions_listed("vision").order_by("-id"))
    with timezone.override(zone):
        views = _pages("vision", 2)
        assert len(views) == 5 and all(isinstance(view, RowView) for view in views)
        shown = ModelVersionSerializer(views, many=True).data
        expected = ModelVersionSerializer(instances, many=True).data
    assert shown == expected
    by_version = {item["version"]: item for item in shown}
    assert by_version["1.0"]["deployed_to"] == ["production", "staging"]
    assert by_version["1.0"]["metrics"] == {"auc": 0.91, "loss": 0.125}
    assert [split["variant"] for split in by_version["3.0"]["experiments"]] == ["3.0"]
    config, sent = by_version["5.0"]["training_config"], json.loads(TRICKY_JSON)
    # (PostgreSQL's jsonb keeps 1.7976931348623157e308 as a numeric: it comes back as a long integer.)
    assert {key: config[key] for key in sent if key != "big"} == {key: sent[key] for key in sent if key != "big"}
    assert config["seed"] == 123456789012345678901234567890 and float(config["big"]) == 1.7976931348623157e308
    assert by_version["2.0"]["file_url"] is None and by_version["2.0"]["checksum"] is None
    assert by_version["4.0-beta+x"]["file_url"] == "/models/vision/versions/4.0-beta+x/file"
    assert by_version["3.0"]["is_default"] is True and by_version["3.0"]["created_at"].endswith("Z") == (zone == "UTC")


def test_the_list_route_shows_the_same_pages_as_the_orm(api, registry):
    """The route's answer from views (no filter) against the same list through the filtered queryset
    (a filter that keeps every version), page after page."""
    plain = api.get("/models/vision/versions", {"page_size": "2"}).json()
    filtered = api.get("/models/vision/versions", {"page_size": "2", "format": "onnx"}).json()
    while True:
        assert plain["results"] == filtered["results"]
        if not plain["next"]:
            break
        plain, filtered = api.get(plain["next"]).json(), api.get(filtered["next"]).json()


def test_a_view_reads_only_its_row(registry):
    (view,) = selectors.version_pages("vision").order_by("-id")[0:1]
    instance = ModelVersion.objects.get(pk=view.pk)
    assert (view.pk, view.id, view.version, view.model_id) == (
        instance.pk,
        instance.id,
        "5.0",
        instance.model_id,
    )
    assert (view.file_path, view.file_size, view.checksum) == (
        instance.file_path,
        instance.file_size,
        instance.checksum,
    )
    assert view.model.name == "vision"
    with pytest.raises(AttributeError):
        view.model.readme  # noqa: B018  a list does not read the model card
    with pytest.raises(AttributeError):
        view.save()  # a view is no instance: nothing to write through
    (without_file,) = [v for v in _pages("vision", 50) if v.version == "2.0"]
    assert without_file.artifact is None and without_file.file_path is None


class WithOwnRead(serializers.Serializer):
    """A field that reads an attribute no row holds goes DRF's way, and fails as DRF fails."""

    name = serializers.CharField(source="model.readme")


def test_a_field_reading_what_the_row_lacks_fails_loudly(registry):
    (view,) = selectors.version_pages("vision").order_by("-id")[0:1]
    with pytest.raises(AttributeError):
        WithOwnRead(view).data  # noqa: B018
