"""Query parameters are read strictly: a value the list cannot honour is a 400 naming the parameter, never a
list filtered differently from what was asked (or a 500 from the database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from registry_site.models import AuditEvent

pytestmark = pytest.mark.django_db

LISTS = ["/models", "/models/resnet/versions", "/deployments", "/audit"]


def _assert_refused(response, parameter: str) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert parameter in response.json()["errors"], response.json()
    assert parameter in response.json()["detail"]


@pytest.mark.parametrize("offset", ["+16:00", "-15:00", "+14:30", "+23:59"])
@pytest.mark.parametrize("parameter", ["since", "until"])
def test_a_utc_offset_no_zone_uses_is_400(api, world, parameter, offset):
    """PostgreSQL refuses an offset past 15:59 in the query itself: it was an HTML 500 there (a 200 on
    SQLite). No time zone is further than 14 hours from UTC."""
    response = api.get("/audit", {parameter: f"2020-01-01T00:00:00{offset}"})

    _assert_refused(response, parameter)
    assert "offset" in response.json()["errors"][parameter][0]


@pytest.mark.parametrize(
    "parameter, value", [("since", "0001-01-01T00:00:00+01:00"), ("until", "9999-12-31T23:59:59-01:00")]
)
def test_an_instant_beyond_what_python_represents_in_utc_is_the_first_or_last_one(api, world, parameter, value):
    response = api.get("/audit", {parameter: value})

    assert response.status_code == 200, response.json()
    assert len(response.json()["results"]) == AuditEvent.objects.count()


def test_offsets_are_honoured_in_utc(api, world):
    event = AuditEvent.objects.create(
        at=datetime(2020, 1, 1, 12, 0, tzinfo=UTC), actor="test", via="command", action="create", object_type="model"
    )

    def ids(**params) -> list[int]:
        response = api.get("/audit", params)
        assert response.status_code == 200, response.json()
        return [item["id"] for item in response.json()["results"]]

    # 12:00 UTC is 02:00 at -10:00 and 02:00 the next day at +14:00.
    assert event.pk in ids(since="2020-01-01T01:59:00-10:00", until="2020-01-01T02:01:00-10:00")
    assert event.pk in ids(since="2020-01-02T01:59:00+14:00", until="2020-01-02T02:01:00+14:00")
    assert event.pk not in ids(since="2020-01-01T12:01:00Z")
    assert event.pk in ids(until="2020-01-01T12:00:01+00:00", since="2020-01-01T11:59:59.5Z")


@pytest.mark.parametrize(
    "path, parameter",
    [
        ("/models", "model_type"),
        ("/models", "is_active"),
        ("/models/resnet/versions", "status"),
        ("/models/resnet/versions", "format"),
        ("/models/resnet/versions", "is_default"),
        ("/deployments", "status"),
        ("/deployments", "target"),
        ("/audit", "since"),
        ("/audit", "until"),
        ("/audit", "actor"),
    ],
)
def test_an_empty_filter_is_400_not_an_unfiltered_list(api, world, path, parameter):
    _assert_refused(api.get(f"{path}?{parameter}="), parameter)


def test_a_filter_given_twice_is_400(api, world):
    _assert_refused(api.get("/models/resnet/versions?status=approved&status=testing"), "status")


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("value", ["", "abc", "0", "-1", "1e9", "1.5", " 5", "٣", "0x10"])
def test_a_junk_page_size_is_400(api, world, path, value):
    _assert_refused(api.get(path, {"page_size": value}), "page_size")


@pytest.mark.parametrize(
    "value", ["1", "007", "500", "501", "99999999999999999999999", pytest.param("9" * 5000, id="5000-digits")]
)
def test_a_whole_page_size_is_honoured_up_to_the_cap(api, world, value):
    response = api.get("/models", {"page_size": value})

    assert response.status_code == 200, response.json()
    assert len(response.json()["results"]) == min(int(value[:6]), 2)  # world has two models


def test_an_empty_cursor_is_the_first_page(api, world):
    assert api.get("/models?cursor=").json()["results"] == api.get("/models").json()["results"]
