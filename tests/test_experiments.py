"""A/B tests (issue #11) through the API: an experiment's life, its refusals (4xx naming the field,
nothing written), the database's one-live-experiment rule, who may do what, and concluding with a
winner."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from deployments_app import experiments
from deployments_app.models import Deployment, DeploymentStatus, Experiment, ExperimentState, ResultBatch, Variant
from registry_site.errors import Forbidden
from registry_site.models import AuditEvent
from registry_site.permissions import Operator
from tests.conftest import deploy, registry_state

pytestmark = pytest.mark.django_db

URL = "/models/resnet/targets/staging/experiments"


def body(**overrides) -> dict:
    return {
        "name": "candidate v2",
        "variants": [
            {"version": "v1", "weight": 9000, "is_control": True, "name": "control"},
            {"version": "v2", "weight": 1000, "name": "candidate"},
        ],
        **overrides,
    }


def created(api, **overrides) -> dict:
    response = api.post(URL, body(**overrides), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def act(api, experiment: dict | int, verb: str, payload: dict | None = None):
    pk = experiment if isinstance(experiment, int) else experiment["id"]
    return api.post(f"/experiments/{pk}/{verb}", payload, format="json")


def state(storage_dir) -> dict:
    return {
        **registry_state(storage_dir),
        "experiments": list(Experiment.objects.order_by("pk").values()),
        "variants": list(Variant.objects.order_by("pk").values()),
        "results": list(ResultBatch.objects.order_by("pk").values()),
    }


def test_an_experiments_life_through_the_api(api, world):
    experiment = created(api)
    assert experiment["state"] == "draft" and experiment["target"] == "staging"
    assert [(v["name"], v["version"], v["weight"], v["is_control"]) for v in experiment["variants"]] == [
        ("control", "v1", 9000, True),
        ("candidate", "v2", 1000, False),
    ]
    assert api.get(f"/experiments/{experiment['id']}").json()["state"] == "draft"
    for verb, expected in [("start", "running"), ("pause", "paused"), ("resume", "running"), ("stop", "stopped")]:
        response = act(api, experiment, verb)
        assert response.status_code == 200, response.json()
        assert response.json()["state"] == expected
    final = api.get(f"/experiments/{experiment['id']}").json()
    assert final["started_at"] and final["stopped_at"]
    assert [e.action for e in AuditEvent.objects.filter(object_type="experiment").order_by("id")] == [
        "create_experiment",
        "start_experiment",
        "pause_experiment",
        "resume_experiment",
        "stop_experiment",
    ]
    listed = api.get(URL).json()["results"]
    assert [e["id"] for e in listed] == [experiment["id"]]


@pytest.mark.parametrize(
    ("start_with", "verb"),
    [([], "pause"), ([], "resume"), ([], "stop"), (["start"], "start"), (["start", "stop"], "resume")],
)
def test_an_illegal_transition_is_a_409_naming_the_state(api, world, start_with, verb, storage_dir):
    experiment = created(api)
    for earlier in start_with:
        assert act(api, experiment, earlier).status_code == 200
    before = state(storage_dir)
    response = act(api, experiment, verb)
    assert response.status_code == 409
    assert "state" in response.json()["errors"]
    assert state(storage_dir) == before


@pytest.mark.parametrize(
    ("overrides", "field", "words", "code"),
    [
        (
            {"variants": [{"version": "v1", "weight": 9000, "is_control": True}, {"version": "v2", "weight": 900}]},
            "weights",
            "sum to 9900",
            400,
        ),
        ({"variants": [{"version": "v1", "weight": 10000, "is_control": True}]}, "variants", "at least 2", 400),
        (
            {"variants": [{"version": "v1", "weight": 5000}, {"version": "v2", "weight": 5000}]},
            "variants",
            "one variant is the control",
            400,
        ),
        (
            {"variants": [{"version": "v1", "weight": 9000, "is_control": True}, {"version": "v9", "weight": 1000}]},
            "variants",
            "no version 'v9'",
            400,
        ),
        (
            {"variants": [{"version": "v1", "weight": 9000, "is_control": True}, {"version": "v3", "weight": 1000}]},
            "variants",
            "has no file",
            409,
        ),
        (
            {"variants": [{"version": "v1", "weight": 9000, "is_control": True}, {"version": "v2", "weight": -1}]},
            "variants",
            "greater than or equal to 0",
            400,
        ),
        (
            {
                "variants": [
                    {"version": "v1", "weight": 5000, "is_control": True, "name": "a"},
                    {"version": "v2", "weight": 5000, "name": "a"},
                ]
            },
            "variants",
            "same name",
            400,
        ),
        ({"metric_kind": "median"}, "metric_kind", "not a valid choice", 400),
        ({"colour": "red"}, "colour", "", 400),
    ],
)
def test_bad_experiments_are_refused_naming_the_field(api, world, overrides, field, words, code, storage_dir):
    before = state(storage_dir)
    response = api.post(URL, body(**overrides), format="json")
    assert response.status_code == code, response.json()
    assert field in str(response.json()["errors"]) and words in str(response.json())
    assert state(storage_dir) == before


def test_a_variant_of_another_model_is_refused(api, world, make_version):
    make_version(world.spare, "other", data=b"other")
    response = api.post(
        URL,
        body(variants=[{"version": "v1", "weight": 5000, "is_control": True}, {"version": "other", "weight": 5000}]),
        format="json",
    )
    assert response.status_code == 400 and "model 'resnet' has no version 'other'" in response.json()["detail"]


def test_one_running_experiment_per_model_and_target(api, world, storage_dir):
    first, second = created(api), created(api, name="another")
    assert act(api, first, "start").status_code == 200
    before = state(storage_dir)
    response = act(api, second, "start")
    assert response.status_code == 409 and f"Experiment {first['id']}" in response.json()["detail"]
    assert state(storage_dir) == before
    assert act(api, first, "pause").status_code == 200
    assert act(api, second, "start").status_code == 409  # a paused experiment still holds the target
    assert act(api, first, "stop").status_code == 200
    assert act(api, second, "start").status_code == 200
    # Another target is another experiment's.
    response = api.post("/models/resnet/targets/canary/experiments", body(), format="json")
    assert act(api, response.json(), "start").status_code == 200


def test_the_database_refuses_a_second_live_experiment(world):
    first = experiments.create_experiment(
        model=world.model,
        target="staging",
        name="a",
        variants=[experiments.VariantSpec("v1", 5000, is_control=True), experiments.VariantSpec("v2", 5000)],
        acting_user=Operator(),
    )
    second = Experiment.objects.create(model=world.model, target=first.target, name="b")
    Experiment.objects.filter(pk=first.pk).update(state=ExperimentState.RUNNING)
    with pytest.raises(IntegrityError), transaction.atomic():
        Experiment.objects.filter(pk=second.pk).update(state=ExperimentState.PAUSED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Variant.objects.filter(experiment=first).update(weight=10001)
    with pytest.raises(IntegrityError), transaction.atomic():
        Variant.objects.filter(experiment=first).update(is_control=True)


def test_ramping_the_weights(api, world, storage_dir):
    experiment = created(api)
    act(api, experiment, "start")
    response = act(api, experiment, "weights", {"weights": {"control": 8000, "candidate": 2000}})
    assert response.status_code == 200
    assert [v["weight"] for v in response.json()["variants"]] == [8000, 2000]
    assert response.json()["configuration"]["ranges"] == [
        {"variant": "control", "version": "v1", "ranges": [[2000, 10000]]},
        {"variant": "candidate", "version": "v2", "ranges": [[0, 2000]]},
    ]
    before = state(storage_dir)
    for payload, field, words in [
        ({"weights": {"candidate": 3000}}, "weights", "sum to 11000"),
        ({"weights": {"nobody": 0}}, "weights", "No variant named nobody"),
        ({"weights": {"candidate": "10"}}, "weights", "valid integer"),
        ({"weights": {"candidate": 10001, "control": -1}}, "weights", "less than or equal to 10000"),
    ]:
        response = act(api, experiment, "weights", payload)
        assert response.status_code == 400, response.json()
        assert field in response.json()["errors"] and words in str(response.json()), response.json()
    assert state(storage_dir) == before
    event = AuditEvent.objects.filter(action="set_experiment_weights").get()
    assert event.changes["weights"] == {"control": [9000, 8000], "candidate": [1000, 2000]}


def test_each_treatment_owns_a_slot_of_the_buckets(api, world, make_version):
    make_version(world.model, "v4", data=b"four")
    experiment = created(
        api,
        variants=[
            {"version": "v1", "weight": 8000, "is_control": True, "name": "control"},
            {"version": "v2", "weight": 1000, "name": "b"},
            {"version": "v4", "weight": 1000, "name": "c"},
        ],
    )
    assert [r["ranges"] for r in experiment["configuration"]["ranges"]] == [
        [[1000, 5000], [6000, 10000]],
        [[0, 1000]],
        [[5000, 6000]],
    ]
    response = act(api, experiment, "weights", {"weights": {"control": 4000, "b": 6000, "c": 0}})
    assert response.status_code == 400 and "at most 5000" in response.json()["detail"]


def test_who_may_run_experiments(world, production, persona):
    viewer, editor, deployer = persona("viewer"), persona("editor"), persona("deployer")
    assert viewer.client.get(URL).status_code == 200
    assert editor.client.post(URL, body(), format="json").status_code == 403
    experiment = created(deployer.client)
    assert experiment["created_by"] == "deployer-user"
    assert act(editor.client, experiment, "start").status_code == 403
    assert act(deployer.client, experiment, "start").status_code == 200
    assert (
        editor.client.post(
            f"/experiments/{experiment['id']}/results",
            {"batches": [{"variant": "control", "exposures": 1, "conversions": 0}]},
            format="json",
        ).status_code
        == 403
    )
    assert act(viewer.client, experiment, "conclude", {"winner": "candidate"}).status_code == 403


def test_a_protected_target_needs_the_deployer_role(world):
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("experimenter")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_experiment", "change_experiment"]))
    user = User.objects.get(pk=user.pk)
    with pytest.raises(Forbidden, match="Target 'production' is protected: deploying to it needs the deployer role"):
        experiments.create_experiment(
            model=world.model,
            target="production",
            name="p",
            variants=[experiments.VariantSpec("v1", 5000, is_control=True), experiments.VariantSpec("v2", 5000)],
            acting_user=user,
        )
    assert not Experiment.objects.exists()


def test_an_archived_variant_cannot_start(api, world):
    experiment = created(api)
    world.v2.status = "archived"
    world.v2.save(update_fields=["status"])
    response = act(api, experiment, "start")
    assert response.status_code == 409 and "archived" in response.json()["detail"]
    assert Experiment.objects.get(pk=experiment["id"]).state == "draft"


def test_concluding_deploys_the_winner_and_records_the_decision(api, world):
    experiment = created(api)
    act(api, experiment, "start")
    api.post(
        f"/experiments/{experiment['id']}/results",
        {
            "batches": [
                {"variant": "control", "exposures": 900, "conversions": 90},
                {"variant": "candidate", "exposures": 100, "conversions": 12},
            ]
        },
        format="json",
    )
    response = act(api, experiment, "conclude", {"winner": "candidate", "make_default": True})
    assert response.status_code == 200, response.json()
    decision = response.json()["decision"]
    assert response.json()["state"] == "concluded"
    assert (decision["winner"], decision["version"], decision["made_default"]) == ("candidate", "v2", True)
    assert decision["results"]["variants"][1]["units"] == 100
    active = Deployment.objects.get(
        model=world.model, deployment_target="staging", deployment_status=DeploymentStatus.ACTIVE
    )
    assert active.model_version == world.v2 and active.pk == decision["deployment"]
    world.v2.refresh_from_db()
    assert world.v2.is_default
    assert act(api, experiment, "conclude", {"winner": "candidate"}).status_code == 409
    assert api.get("/models/resnet/targets/staging/assignment", {"key": "u1"}).json()["version"] == "v2"


def test_concluding_with_an_unknown_winner_writes_nothing(api, world, storage_dir):
    experiment = created(api)
    act(api, experiment, "start")
    before = state(storage_dir)
    response = act(api, experiment, "conclude", {"winner": "nobody"})
    assert response.status_code == 400 and "winner" in response.json()["errors"]
    assert state(storage_dir) == before


def test_a_draft_cannot_be_concluded(api, world):
    experiment = created(api)
    response = act(api, experiment, "conclude", {"winner": "candidate"})
    assert response.status_code == 409
    assert not deploy(api, world.model, "v1", "staging").status_code == 201  # v1 was active already: 200


def test_the_targets_listing_shows_the_running_split(api, world):
    experiment = created(api)
    rows = {row["target"]: row for row in api.get("/models/resnet/targets").json()["results"]}
    assert rows["staging"]["experiment"] is None  # a draft splits nothing
    act(api, experiment, "start")
    rows = {row["target"]: row for row in api.get("/models/resnet/targets").json()["results"]}
    assert rows["staging"]["experiment"] == {
        "id": experiment["id"],
        "name": "candidate v2",
        "state": "running",
        "split": [
            {"variant": "control", "version": "v1", "weight": 9000, "is_control": True},
            {"variant": "candidate", "version": "v2", "weight": 1000, "is_control": False},
        ],
    }
    assert rows["production"]["experiment"] is None
    assert rows["staging"]["active"]["version"] == "v1"  # the deployment itself is unchanged meanwhile


def test_a_versions_page_shows_the_split_beside_deployed_to(api, admin_client, world):
    """`deployed_to` stays the seed's list of targets where the version is active; `experiments` says where
    a running or paused experiment splits a target's traffic with it, in the one query that reads the
    version (GET .../versions/{v}, the versions' list, the admin's list)."""
    experiment = created(api)
    version = api.get("/models/resnet/versions/v2").json()
    assert version["deployed_to"] == [] and version["experiments"] == []  # a draft splits nothing
    act(api, experiment, "start")
    act(api, experiment, "weights", {"weights": {"control": 8000, "candidate": 2000}})
    split = {"target": "staging", "experiment": experiment["id"], "state": "running", "variant": "candidate"}
    assert api.get("/models/resnet/versions/v2").json()["experiments"] == [
        {**split, "weight": 2000, "is_control": False}
    ]
    listed = {v["version"]: v for v in api.get("/models/resnet/versions").json()["results"]}
    assert listed["v1"]["deployed_to"] == ["staging"]
    assert listed["v1"]["experiments"] == [{**split, "variant": "control", "weight": 8000, "is_control": True}]
    assert listed["v3"]["experiments"] == []
    html = admin_client.get("/admin/models_app/modelversion/").content.decode()
    assert f"staging: 20% in A/B test #{experiment['id']}" in html
    assert f"staging, staging: 80% in A/B test #{experiment['id']}" in html
    act(api, experiment, "pause")
    assert api.get("/models/resnet/versions/v2").json()["experiments"][0]["state"] == "paused"
    act(api, experiment, "stop")
    assert api.get("/models/resnet/versions/v2").json()["experiments"] == []


def test_a_tested_version_and_a_target_with_experiments_are_kept(api, world, storage_dir):
    response = api.post(
        "/models/resnet/targets/canary/experiments",
        body(variants=[{"version": "v2", "weight": 5000, "is_control": True}, {"version": "v1", "weight": 5000}]),
        format="json",
    )
    assert response.status_code == 201
    before = state(storage_dir)
    refused = api.delete("/models/resnet/versions/v2")
    assert refused.status_code == 409 and "variant of experiment" in refused.json()["detail"]
    refused = api.delete("/targets/canary")
    assert refused.status_code == 409 and "has experiments" in refused.json()["detail"]
    assert state(storage_dir) == before
    # Deleting the whole model takes its experiments along (once nothing is active: v1 is on staging).
    api.post("/models/resnet/targets/staging/rollback", {}, format="json")
    assert api.delete("/models/resnet").status_code == 204
    assert not Experiment.objects.exists() and not Variant.objects.exists()


def test_a_nested_error_is_a_sentence_naming_its_place(api, world):
    response = api.post(
        URL, body(variants=[{"version": "v1", "weight": 9000, "is_control": True}, {"version": "v2"}]), format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"variants": ["variants[1].weight: This field is required."]}


def test_the_targets_promotion_policy_judges_the_variants(world):
    """A treatment serves real traffic: it must pass the target's promotion policy as a deploy would; the
    control, already active there, is not judged again (a deploy of it would not be either)."""
    from deployments_app import services
    from deployments_app.models import Target
    from registry_site.errors import PolicyRefused

    services.set_policy(target=Target.objects.get(name="staging"), rules={"required_status": "approved"})
    variants = [experiments.VariantSpec("v1", 9000, is_control=True), experiments.VariantSpec("v2", 1000)]
    with pytest.raises(PolicyRefused, match="refuses resnet:v2") as refused:
        experiments.create_experiment(
            model=world.model, target="staging", name="p", variants=variants, acting_user=Operator()
        )
    assert [check["rule"] for check in refused.value.checks if not check["passed"]] == ["status"]
    assert not Experiment.objects.exists()
    world.v2.status = "approved"
    world.v2.save(update_fields=["status"])
    experiment = experiments.create_experiment(
        model=world.model, target="staging", name="p", variants=variants, acting_user=Operator()
    )
    assert experiments.start_experiment(experiment=experiment, acting_user=Operator()).state == "running"
