"""Cursor pagination of the three lists (/models, /models/{m}/versions, /deployments): page shape and
sizes, a stable order that visits every row once, and a number of SQL queries per page that does not
grow with the page."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployments_app.models import Deployment, Target
from models_app.models import ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


# --- Data -----------------------------------------------------------------------------------------------
def bulk_models(count: int, prefix: str = "m") -> list[RegisteredModel]:
    RegisteredModel.objects.bulk_create(
        RegisteredModel(name=f"{prefix}{i:04d}", model_type="classification") for i in range(count)
    )
    return list(RegisteredModel.objects.filter(name__startswith=prefix))


def bulk_versions(model: RegisteredModel, count: int, prefix: str = "v") -> None:
    ModelVersion.objects.bulk_create(
        ModelVersion(model=model, version=f"{prefix}{i}", format="onnx") for i in range(count)
    )


def bulk_deployments(model: RegisteredModel, count: int) -> None:
    """`count` deployments of `model`'s file-less (bulk) versions, one target each (so each can be active)."""
    versions = list(ModelVersion.objects.filter(model=model, artifact__isnull=True).order_by("id"))
    Target.objects.bulk_create((Target(name=f"target-{i}") for i in range(count)), ignore_conflicts=True)
    Deployment.objects.bulk_create(
        Deployment(
            model=model,
            model_version=versions[i % len(versions)],
            deployment_target_id=f"target-{i}",
            deployment_status="active" if i % 3 else "superseded",
        )
        for i in range(count)
    )


LISTS = ["models", "versions", "deployments"]


@pytest.fixture
def populated(make_model):
    """Return a function that fills one list with `count` rows and gives its URL."""

    def fill(kind: str, count: int) -> str:
        if kind == "models":
            bulk_models(count)
            return "/models"
        model = make_model(name="paged")
        if kind == "versions":
            bulk_versions(model, count)
            return "/models/paged/versions"
        bulk_versions(model, 7)
        bulk_deployments(model, count)
        return "/deployments"

    return fill


def expected_keys(kind: str) -> list:
    if kind == "models":
        return list(RegisteredModel.objects.order_by("name").values_list("name", flat=True))
    if kind == "versions":
        return list(ModelVersion.objects.filter(model__name="paged").order_by("-id").values_list("id", flat=True))
    return list(Deployment.objects.order_by("-id").values_list("id", flat=True))


def key(kind: str, item: dict):
    return item["name"] if kind == "models" else item["id"]


def get_page(api, url: str, **params) -> dict:
    response = api.get(url, params)
    assert response.status_code == 200, response.content
    return response.json()


def follow(api, link: str) -> dict:
    """Follow an absolute `next`/`previous` link (http://testserver/...)."""
    parts = urlsplit(link)
    assert parts.path  # absolute link to the same path
    response = api.get(parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()})
    assert response.status_code == 200, response.content
    return response.json()


# --- Shape and sizes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", LISTS)
def test_page_shape_and_default_size(api, populated, kind):
    url = populated(kind, DEFAULT_PAGE_SIZE + 3)

    page = get_page(api, url)

    assert set(page) == {"next", "previous", "results"}
    assert len(page["results"]) == DEFAULT_PAGE_SIZE
    assert page["next"]
    assert page["previous"] is None
    assert "cursor=" in page["next"]
    rest = follow(api, page["next"])
    assert len(rest["results"]) == 3
    assert rest["next"] is None
    assert rest["previous"]


@pytest.mark.parametrize("kind", LISTS)
def test_page_size_parameter(api, populated, kind):
    url = populated(kind, 12)

    page = get_page(api, url, page_size=5)

    assert len(page["results"]) == 5
    assert "page_size=5" in page["next"]


@pytest.mark.parametrize("kind", LISTS)
def test_page_size_is_capped_at_500(api, populated, kind):
    url = populated(kind, MAX_PAGE_SIZE + 5)

    page = get_page(api, url, page_size=10_000)

    assert len(page["results"]) == MAX_PAGE_SIZE
    assert page["next"]
    assert len(follow(api, page["next"])["results"]) == 5


@pytest.mark.parametrize("kind", LISTS)
def test_small_list_has_no_links(api, populated, kind):
    url = populated(kind, 3)

    page = get_page(api, url)

    assert len(page["results"]) == 3
    assert page["next"] is None
    assert page["previous"] is None


# --- Walking the pages ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", LISTS)
def test_following_next_visits_every_row_once_in_a_stable_order(api, populated, kind):
    url = populated(kind, 23)
    expected = expected_keys(kind)
    assert len(expected) == 23

    seen, pages = [], []
    page = get_page(api, url, page_size=5)
    while True:
        pages.append([key(kind, item) for item in page["results"]])
        seen.extend(pages[-1])
        if not page["next"]:
            break
        page = follow(api, page["next"])

    assert seen == expected
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]

    # Walking back with `previous` from the last page gives the same pages, in reverse.
    back = [pages[-1]]
    while page["previous"]:
        page = follow(api, page["previous"])
        back.append([key(kind, item) for item in page["results"]])
    assert back == pages[::-1]


@pytest.mark.parametrize("kind", LISTS)
def test_same_request_gives_the_same_page(api, populated, kind):
    url = populated(kind, 9)

    first = get_page(api, url, page_size=4)
    second = get_page(api, url, page_size=4)

    assert first == second


def test_versions_inserted_while_paging_are_neither_repeated_nor_skip_rows(api, make_model):
    model = make_model(name="paged")
    bulk_versions(model, 10)
    original = expected_keys("versions")

    page = get_page(api, "/models/paged/versions", page_size=4)
    seen = [item["id"] for item in page["results"]]
    bulk_versions(model, 3, prefix="new")  # newer than everything: sorts before the cursor
    while page["next"]:
        page = follow(api, page["next"])
        seen.extend(item["id"] for item in page["results"])

    assert seen == original


def test_models_inserted_while_paging_are_neither_repeated_nor_skip_rows(api, db):
    bulk_models(10)
    original = expected_keys("models")

    page = get_page(api, "/models", page_size=4)
    seen = [item["name"] for item in page["results"]]
    RegisteredModel.objects.create(name="m0000a", model_type="audio")  # before the cursor
    RegisteredModel.objects.create(name="m0008a", model_type="audio")  # after it
    while page["next"]:
        page = follow(api, page["next"])
        seen.extend(item["name"] for item in page["results"])

    assert len(seen) == len(set(seen))
    assert [name for name in seen if name in original] == original
    assert "m0008a" in seen and "m0000a" not in seen


def test_filters_are_kept_in_next_links(api, db):
    bulk_models(6, prefix="a")
    RegisteredModel.objects.bulk_create(RegisteredModel(name=f"b{i}", model_type="audio") for i in range(6))

    page = get_page(api, "/models", model_type="audio", page_size=4)
    names = [item["name"] for item in page["results"]]
    page = follow(api, page["next"])
    names += [item["name"] for item in page["results"]]

    assert names == [f"b{i}" for i in range(6)]
    assert page["next"] is None


def test_invalid_cursor_is_an_error_not_a_500(api, db):
    bulk_models(3)

    response = api.get("/models", {"cursor": "not-a-cursor"})

    assert 400 <= response.status_code < 500
    assert response.json()["detail"]


@pytest.mark.parametrize("position", ["abc", "1e5", ""])
def test_a_forged_cursor_position_is_an_invalid_cursor_not_a_500(api, make_model, make_version, position):
    """The versions' cursor holds an id: a position that is no number is an invalid cursor, as any other."""
    make_version(make_model("vision"), "1.0")
    cursor = base64.b64encode(f"p={position}".encode()).decode()
    response = api.get("/models/vision/versions", {"cursor": cursor})
    assert response.status_code == 404 and response.json()["detail"] == "Invalid cursor"


# --- Queries per page -------------------------------------------------------------------------------------
@pytest.fixture
def rich_data(api, make_model, make_version):
    """Rows whose serialization touches every relation: versions with files, defaults and active
    deployments on several targets; deployments of several models and versions; models with and
    without a default version."""
    models = [make_model(name=f"model{i:02d}") for i in range(3)]
    for model in models:
        bulk_versions(model, 40, prefix="bulk")
        for n in range(3):
            make_version(model, f"v{n}", data=f"{model.name}-{n}".encode())
        for n, target in enumerate(["production", "staging", "canary"]):
            response = api.post(
                "/deploy",
                {"model_name": model.name, "version": f"v{n % 2}", "deployment_target": target},
                format="json",
            )
            assert response.status_code == 201, response.json()
        bulk_deployments(model, 14)
        # Every version has a file (the bulk ones share v0's), so every row of any page reaches it.
        shared = ModelVersion.objects.get(model=model, version="v0").artifact
        ModelVersion.objects.filter(model=model, artifact__isnull=True).update(artifact=shared)
    bulk_models(40, prefix="zz")
    ModelVersion.objects.filter(model__name="model00", version="v0").update(is_default=False)
    ModelVersion.objects.filter(model__name="model00", version="v2").update(is_default=True)
    return models


def count_queries(api, url: str, page_size: int) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as ctx:
        response = api.get(url, {"page_size": page_size})
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries), len(response.json()["results"])


@pytest.mark.parametrize("url", ["/models", "/models/model01/versions", "/deployments"])
def test_queries_per_page_do_not_grow_with_the_page(api, rich_data, url, django_assert_num_queries):
    api.get(url, {"page_size": 1})  # warm up anything that is cached per process

    small, small_rows = count_queries(api, url, 2)
    assert small_rows == 2

    with django_assert_num_queries(small):
        response = api.get(url, {"page_size": 40})
    assert len(response.json()["results"]) == 40
    assert small <= 6  # one page is a handful of queries (versions: their metrics and tags too), not one per row


@pytest.mark.parametrize("url", ["/models", "/models/model01/versions", "/deployments"])
def test_queries_per_page_after_a_cursor(api, rich_data, url):
    first = get_page(api, url, page_size=2)
    cursor = parse_qs(urlsplit(first["next"]).query)["cursor"][0]

    with CaptureQueriesContext(connection) as small:
        a = api.get(url, {"page_size": 2, "cursor": cursor})
    with CaptureQueriesContext(connection) as large:
        b = api.get(url, {"page_size": 40, "cursor": cursor})

    assert len(a.json()["results"]) == 2
    assert len(b.json()["results"]) == 40
    assert len(small.captured_queries) == len(large.captured_queries)


def test_versions_page_reports_deployed_targets_and_files(api, rich_data):
    """The constant-query page still shows every relation (it is not constant by leaving them out)."""
    results = get_page(api, "/models/model01/versions", page_size=40)["results"]
    by_version = {item["version"]: item for item in results}

    assert by_version["v0"]["deployed_to"] == ["canary", "production"]
    assert by_version["v1"]["deployed_to"] == ["staging"]
    assert by_version["v2"]["deployed_to"] == []
    assert by_version["v2"]["checksum"] and by_version["v2"]["file_size"]
    assert by_version["bulk39"]["checksum"] == by_version["v0"]["checksum"]
    assert by_version["bulk39"]["file_url"] == "/models/model01/versions/bulk39/file"
    assert get_page(api, "/models", page_size=3)["results"][0]["default_version"] == "v2"
