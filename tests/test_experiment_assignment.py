"""GET /models/{m}/targets/{t}/assignment (issue #11 §2): deterministic, sticky, the same as the formula a
serving system computes from the published configuration, monotone when weights ramp, and cheap."""

from __future__ import annotations

import hashlib

import pytest

from deployments_app import experiments
from deployments_app.models import Experiment
from registry_site.permissions import Operator

pytestmark = pytest.mark.django_db

ASSIGN = "/models/resnet/targets/staging/assignment"


def documented_bucket(salt: str, key: str) -> int:
    """The README's formula, written again here rather than imported."""
    return int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big") % 10000


def local_variant(configuration: dict, key: str) -> str:
    bucket = documented_bucket(configuration["salt"], key)
    owners = [
        entry["variant"] for entry in configuration["ranges"] for start, end in entry["ranges"] if start <= bucket < end
    ]
    assert len(owners) == 1, (bucket, configuration)
    return owners[0]


def running(api, weights=(9000, 1000), **extra) -> dict:
    response = api.post(
        "/models/resnet/targets/staging/experiments",
        {
            "name": "ramp",
            "variants": [
                {"version": "v1", "weight": weights[0], "is_control": True, "name": "control"},
                {"version": "v2", "weight": weights[1], "name": "candidate"},
            ],
            **extra,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert api.post(f"/experiments/{response.json()['id']}/start").status_code == 200
    return api.get(f"/experiments/{response.json()['id']}").json()


def test_the_server_and_the_published_formula_agree(api, world):
    experiment = running(api, (7000, 3000), salt="pepper")
    configuration = experiment["configuration"]
    assert configuration["salt"] == "pepper" and configuration["buckets"] == 10000
    for i in range(400):  # through the API
        key = f"user-{i}"
        answer = api.get(ASSIGN, {"key": key}).json()
        assert answer["variant"] == local_variant(configuration, key)
        assert answer["bucket"] == documented_bucket("pepper", key)
        assert answer["version"] == ("v1" if answer["variant"] == "control" else "v2")
        assert answer["experiment"] == experiment["id"] and answer["state"] == "running"
    for i in range(1600):  # the service the view calls, more keys (2000 in all)
        key = f"unit:{i}"
        found = experiments.assign(model_name="resnet", target_name="staging", key=key)
        assert found.variant.name == local_variant(configuration, key)
    answer = api.get(ASSIGN, {"key": "ü-ñicode ✓"}).json()
    assert answer["variant"] == local_variant(configuration, "ü-ñicode ✓")


def test_the_answer_carries_the_versions_file(api, world):
    configuration = running(api)["configuration"]
    answers = {a["variant"]: a for a in (api.get(ASSIGN, {"key": f"k{i}"}).json() for i in range(100))}
    assert answers["candidate"]["sha256"] == world.v2.artifact_id
    assert answers["candidate"]["file_url"] == "/models/resnet/versions/v2/file"
    assert answers["control"]["sha256"] == world.v1.artifact_id
    # The split roughly follows the weights (10% of 2000 keys: 200, far from 0 or 2000).
    share = sum(local_variant(configuration, f"s{i}") == "candidate" for i in range(2000))
    assert 140 < share < 260


def test_ramping_up_moves_only_control_units_into_the_treatment(api, world):
    experiment = running(api, (9000, 1000))
    keys = [f"member-{i}" for i in range(10_000)]

    def treated() -> set[str]:
        configuration = api.get(f"/experiments/{experiment['id']}").json()["configuration"]
        return {key for key in keys if local_variant(configuration, key) == "candidate"}

    at_10 = treated()
    api.post(
        f"/experiments/{experiment['id']}/weights", {"weights": {"control": 8000, "candidate": 2000}}, format="json"
    )
    at_20 = treated()
    api.post(
        f"/experiments/{experiment['id']}/weights", {"weights": {"control": 5000, "candidate": 5000}}, format="json"
    )
    at_50 = treated()
    assert at_10 < at_20 < at_50  # strict supersets: every treated unit stays treated
    assert 800 < len(at_10) < 1200 and 1750 < len(at_20) < 2250 and 4700 < len(at_50) < 5300
    api.post(
        f"/experiments/{experiment['id']}/weights", {"weights": {"control": 9500, "candidate": 500}}, format="json"
    )
    assert treated() < at_10  # ramping down keeps a subset


def test_ramping_one_treatment_leaves_the_others_units_alone(api, world, make_version):
    make_version(world.model, "v4", data=b"four")
    experiment = experiments.create_experiment(
        model=world.model,
        target="staging",
        name="three",
        variants=[
            experiments.VariantSpec("v1", 8000, "control", is_control=True),
            experiments.VariantSpec("v2", 1000, "b"),
            experiments.VariantSpec("v4", 1000, "c"),
        ],
        acting_user=Operator(),
    )
    experiments.start_experiment(experiment=experiment, acting_user=Operator())
    keys = [f"k{i}" for i in range(10_000)]

    def split() -> dict[str, set[str]]:
        configuration = experiments.configuration(experiments.get_experiment(experiment.pk))
        groups: dict[str, set[str]] = {"control": set(), "b": set(), "c": set()}
        for key in keys:
            groups[local_variant(configuration, key)].add(key)
        return groups

    before = split()
    experiments.set_weights(experiment=experiment, weights={"b": 3000, "control": 6000})
    after = split()
    assert after["c"] == before["c"] and before["b"] < after["b"]
    assert after["b"] - before["b"] <= before["control"]


def test_without_a_running_experiment_the_active_version_answers(api, world):
    answer = api.get(ASSIGN, {"key": "u1"}).json()
    assert answer == {
        "experiment": None,
        "state": None,
        "variant": None,
        "bucket": None,
        "version": "v1",
        "file_url": "/models/resnet/versions/v1/file",
        "sha256": world.v1.artifact_id,
    }
    experiment = running(api, (5000, 5000))
    api.post(f"/experiments/{experiment['id']}/pause")
    paused = [api.get(ASSIGN, {"key": f"u{i}"}).json() for i in range(30)]
    assert {(a["variant"], a["version"], a["state"]) for a in paused} == {("control", "v1", "paused")}
    api.post(f"/experiments/{experiment['id']}/stop")
    assert api.get(ASSIGN, {"key": "u1"}).json()["experiment"] is None
    # The target's name in any case, as everywhere.
    assert api.get("/models/resnet/targets/STAGING/assignment", {"key": "u1"}).json()["version"] == "v1"


def test_nothing_to_serve_is_a_404_naming_what_is_missing(api, world):
    response = api.get("/models/resnet/targets/production/assignment", {"key": "u1"})
    assert response.status_code == 404
    assert "No version of model 'resnet' is active on target 'production'" in response.json()["detail"]
    assert "Model 'nope' not found" in api.get("/models/nope/targets/staging/assignment", {"key": "u"}).json()["detail"]
    assert (
        "Target 'nowhere' not found"
        in api.get("/models/resnet/targets/nowhere/assignment", {"key": "u"}).json()["detail"]
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [({}, "key"), ({"key": ""}, "key"), ({"key": "x" * 257}, "key"), ({"key": "u", "user": "u"}, "user")],
)
def test_a_bad_key_is_a_400_naming_it(api, world, query, field):
    response = api.get(ASSIGN, query)
    assert response.status_code == 400 and field in response.json()["errors"]


def test_an_assignment_is_one_query_with_an_experiment_and_two_without(api, world, django_assert_num_queries):
    api.get(ASSIGN, {"key": "warm"})
    with django_assert_num_queries(2):
        assert api.get(ASSIGN, {"key": "u1"}).status_code == 200
    running(api)
    with django_assert_num_queries(1):
        assert api.get(ASSIGN, {"key": "u1"}).json()["variant"] in ("control", "candidate")
    assert Experiment.objects.get().state == "running"


def test_a_target_name_is_matched_whole_whatever_its_case_never_as_a_pattern(api, world):
    """The assignment's reads are compiled once (registry_site.prepared) with the target's name folded to
    lower case: `_` in a name is a letter, not LIKE's any-character."""
    experiment = running(api, (5000, 5000))
    for name in ("STAGING", "Staging", "staging"):
        assert (
            api.get(f"/models/resnet/targets/{name}/assignment", {"key": "u1"}).json()["experiment"]
            == (experiment["id"])
        )
    assert api.post("/targets", {"name": "edge_eu"}, format="json").status_code == 201
    assert api.post("/targets", {"name": "edgeXeu"}, format="json").status_code == 201
    assert (
        api.post(
            "/deploy", {"model_name": "resnet", "version": "v2", "deployment_target": "edgeXeu"}, format="json"
        ).status_code
        == 201
    )
    assert api.get("/models/resnet/targets/edgexeu/assignment", {"key": "u1"}).json()["version"] == "v2"
    assert api.get("/models/resnet/targets/edge_eu/assignment", {"key": "u1"}).status_code == 404
