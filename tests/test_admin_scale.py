"""The console at scale (issue #15): every admin page costs a fixed number of queries however many
versions, deployments, files and audit events there are, shows a bounded slice of long lists, never
counts a whole table, and searches only in ways an index serves.

Rows are bulk-inserted (no files, no services): these tests are about the pages' reads, not the writes."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deployments_app.models import Deployment, DeploymentStatus, Target
from models_app.models import Artifact, ModelVersion, RegisteredModel
from registry_site.admin_base import CappedCountPaginator
from registry_site.models import AuditEvent

pytestmark = pytest.mark.django_db

FEW = 5
MANY = 300


def url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


def digest(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def add_versions(model: RegisteredModel, start: int, stop: int, *, default: int | None = None) -> None:
    """Versions 1.0.<start>..1.0.<stop-1> of `model`, each with its own stored-file row, in a few queries."""
    Artifact.objects.bulk_create(
        [
            Artifact(sha256=digest(i), size=4096 + i, storage_key=f"{digest(i)[:2]}/{digest(i)}")
            for i in range(start, stop)
        ]
    )
    ModelVersion.objects.bulk_create(
        [
            ModelVersion(
                model=model,
                version=f"1.0.{i}",
                format="onnx",
                status="approved",
                artifact_id=digest(i),
                file_name="model.onnx",
                accuracy=0.9,
                is_default=i == default,
            )
            for i in range(start, stop)
        ]
    )


def add_history(model: RegisteredModel, count: int, *, target_prefix: str = "t") -> None:
    """`count` deployments of the model's newest version (all superseded but one per target) and
    `count` audit events."""
    newest = ModelVersion.objects.filter(model=model).order_by("-id").first()
    for i in range(min(count, 3)):
        Target.objects.get_or_create(name=f"{target_prefix}{i}")
    Deployment.objects.bulk_create(
        [
            Deployment(
                model=model,
                model_version=newest,
                deployment_target_id=f"{target_prefix}{i % 3}",
                deployment_status=DeploymentStatus.SUPERSEDED,
                deployed_by="ci",
            )
            for i in range(count)
        ]
    )
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                actor="ci",
                via="api",
                action="upload",
                object_type="version",
                object_repr=f"{model.name}:1.0.{i}",
                model_name=model.name,
            )
            for i in range(count)
        ]
    )


@pytest.fixture
def registry(db):
    """One model with FEW versions, one active deployment, and a little history."""
    model = RegisteredModel.objects.create(name="long-lived", model_type="classification")
    add_versions(model, 0, FEW, default=0)
    add_history(model, FEW)
    version = ModelVersion.objects.filter(model=model).order_by("-id").first()
    Deployment.objects.create(model=model, model_version=version, deployment_target_id="production", deployed_by="ci")
    return model


def grow(model: RegisteredModel) -> None:
    """From a few rows to a few hundred of each kind: versions, files, deployments, audit events, models."""
    add_versions(model, FEW, MANY)
    add_history(model, MANY)
    RegisteredModel.objects.bulk_create(
        [RegisteredModel(name=f"other-{i:04d}", model_type="audio") for i in range(MANY)]
    )


def pages(model: RegisteredModel) -> dict[str, tuple[str, dict]]:
    version = ModelVersion.objects.filter(model=model).order_by("id").first()
    deployment = Deployment.objects.filter(deployment_status=DeploymentStatus.ACTIVE).first()
    event = AuditEvent.objects.order_by("id").first()
    return {
        "index": (url("index"), {}),
        "model list": (url("models_app_registeredmodel_changelist"), {}),
        "model page": (url("models_app_registeredmodel_change", model.pk), {}),
        "version list": (url("models_app_modelversion_changelist"), {}),
        "version list of the model": (url("models_app_modelversion_changelist"), {"model__id__exact": model.pk}),
        "version list, search": (url("models_app_modelversion_changelist"), {"q": "1.0.1"}),
        "version list, filtered": (url("models_app_modelversion_changelist"), {"status__exact": "approved"}),
        "version page": (url("models_app_modelversion_change", version.pk), {}),
        "version add page": (url("models_app_modelversion_add"), {}),
        "deployment list": (url("deployments_app_deployment_changelist"), {}),
        "deployment list, by target": (url("deployments_app_deployment_changelist"), {"target": "t1"}),
        "deployment page": (url("deployments_app_deployment_change", deployment.pk), {}),
        "audit list": (url("registry_site_auditevent_changelist"), {}),
        "audit list, by action": (url("registry_site_auditevent_changelist"), {"action": "upload", "via": "api"}),
        "audit event page": (url("registry_site_auditevent_change", event.pk), {}),
        "artifact list": (url("models_app_artifact_changelist"), {}),
        "artifact list, sha256 prefix": (url("models_app_artifact_changelist"), {"q": digest(1)[:8]}),
        "artifact page": (url("models_app_artifact_change", version.artifact_id), {}),
    }


def measure(client, model: RegisteredModel) -> dict[str, tuple[int, list[str], str]]:
    measured = {}
    for name, (page, query) in pages(model).items():
        with CaptureQueriesContext(connection) as captured:
            response = client.get(page, query)
        assert response.status_code == 200, (name, response.status_code)
        statements = [q["sql"] for q in captured.captured_queries]
        measured[name] = (len(statements), statements, response.content.decode())
    # The deploy action's form page (the console's "deploy" screen): its versions are the selected ones.
    selected = list(ModelVersion.objects.filter(model=model).order_by("-id").values_list("pk", flat=True)[:1])
    with CaptureQueriesContext(connection) as captured:
        response = client.post(
            url("models_app_modelversion_changelist"),
            {"action": "deploy_to_target", "_selected_action": selected, "index": 0},
        )
    assert response.status_code == 200
    measured["deploy form"] = (len(captured.captured_queries), [q["sql"] for q in captured.captured_queries], "")
    return measured


def test_every_page_costs_the_same_queries_with_a_few_or_hundreds_of_rows(admin_client, registry):
    measure(admin_client, registry)  # warm: sessions, content types, permissions caches
    few = measure(admin_client, registry)
    grow(registry)
    many = measure(admin_client, registry)
    assert {name: count for name, (count, _, _) in many.items()} == {name: count for name, (count, _, _) in few.items()}


def test_no_page_counts_a_whole_table(admin_client, registry):
    grow(registry)
    for name, (_, statements, _) in measure(admin_client, registry).items():
        for sql in statements:
            if "COUNT(" in sql.upper():
                # The paginator's count reads at most cap + 1 rows.
                assert "LIMIT" in sql.upper(), (name, sql)


def test_the_model_page_shows_a_bounded_slice_and_links_to_all_versions(admin_client, registry):
    grow(registry)
    html = admin_client.get(url("models_app_registeredmodel_change", registry.pk)).content.decode()
    linked = set(re.findall(r'href="/admin/models_app/modelversion/(\d+)/change/"', html))
    assert 0 < len(linked) <= 12  # the latest ten, the default version, the one deployed
    newest = ModelVersion.objects.filter(model=registry).order_by("-id").first()
    assert f">{newest.version}</a>" in html
    assert f"{url('models_app_modelversion_changelist')}?model__id__exact={registry.pk}" in html
    assert len(html) < 100_000
    # The default version (the first, not among the latest) is still named.
    assert ">1.0.0</a>" in html


def test_version_selects_never_list_all_versions_or_models(admin_client, registry):
    grow(registry)
    add_page = admin_client.get(url("models_app_modelversion_add")).content.decode()
    # The model field is an autocomplete: no <option> per model.
    assert "other-0001" not in add_page
    assert "admin-autocomplete" in add_page
    version = ModelVersion.objects.filter(model=registry).order_by("id").first()
    version_page = admin_client.get(url("models_app_modelversion_change", version.pk)).content.decode()
    assert version_page.count("<option") < 20
    deployment = Deployment.objects.filter(deployment_status=DeploymentStatus.ACTIVE).first()
    deployment_page = admin_client.get(url("deployments_app_deployment_change", deployment.pk)).content.decode()
    assert "1.0.2</option>" not in deployment_page


def test_version_search_matches_exact_and_prefix_and_sha256(admin_client, registry):
    grow(registry)
    changelist = url("models_app_modelversion_changelist")

    def found(term: str) -> set[str]:
        response = admin_client.get(changelist, {"q": term})
        assert response.status_code == 200
        return {v.version for v in response.context["cl"].result_list}

    assert found("1.0.29") == {"1.0.29", *(f"1.0.29{i}" for i in range(10))}
    assert found("long-lived:1.0.7") == {"1.0.7", *(f"1.0.7{i}" for i in range(10))}
    assert found(digest(42)[:10]) == {"1.0.42"}
    assert found("other-") == set()  # those models have no versions
    assert len(found("long")) == 50  # a page of the model's versions, by name prefix
    assert found("zzz") == set()


def test_model_and_target_filters_are_text_boxes(admin_client, registry):
    grow(registry)
    html = admin_client.get(url("models_app_modelversion_changelist"), {"status__exact": "approved"}).content.decode()
    assert 'name="model_name"' in html and 'name="status__exact"' in html  # the box keeps the other filter
    assert "other-0001" not in html
    response = admin_client.get(url("models_app_modelversion_changelist"), {"model_name": "long-lived"})
    assert {v.model_id for v in response.context["cl"].result_list} == {registry.pk}
    response = admin_client.get(url("deployments_app_deployment_changelist"), {"target": "production"})
    assert [d.deployment_target_id for d in response.context["cl"].result_list] == ["production"]


def test_a_long_list_is_paged_without_counting_it(admin_client, registry, monkeypatch):
    grow(registry)
    monkeypatch.setattr(CappedCountPaginator, "cap", 120)
    response = admin_client.get(url("models_app_modelversion_changelist"))
    cl = response.context["cl"]
    assert cl.paginator.capped and cl.paginator.num_pages == 3
    html = response.content.decode()
    assert "more than 120 model versions" in html or "about" in html
    assert "more than 120 results" in html and "121 results" not in html  # the search bar's count too
    last = admin_client.get(url("models_app_modelversion_changelist"), {"p": 3})
    newest_first = ModelVersion.objects.order_by("-id").values_list("pk", flat=True)
    assert [v.pk for v in last.context["cl"].result_list] == list(newest_first[100:150])


@pytest.mark.parametrize(
    ("column", "index"),
    [
        ("version", "model_versions_version_prefix"),
        ("checksum", None),
    ],
)
def test_prefix_search_is_served_by_an_index(registry, column, index):
    """The plan for the search's WHERE clause uses an index, even on a tiny table (where a scan is
    cheaper, so the planner is told not to)."""
    from registry_site.admin_base import prefix_match

    field = "artifact__sha256" if column == "checksum" else column
    queryset = ModelVersion.objects.filter(prefix_match(field, "1.0.1" if column == "version" else "ab12"))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
        plan = queryset.only("pk").explain()
    if connection.vendor == "postgresql":
        assert "Index" in plan and "Seq Scan" not in plan, plan
    else:
        assert "USING" in plan and "INDEX" in plan.upper(), plan
    if index and connection.vendor != "postgresql":
        assert index in plan or "sqlite_autoindex" in plan or "INDEX" in plan, plan
