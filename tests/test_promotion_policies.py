"""Promotion policies (issue #10 §4): the rules a version must meet before it is deployed to a target,
evaluated in deploy_version (deployments_app.policies), so POST /deploy, its dry run, the admin's
deploy form and manage.py deploy all meet them; the approvals the four-eyes rule counts; and the
policies' own routes (/targets/{t}/policy, /models/{m}/targets/{t}/policy)."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from deployments_app import policies, services
from deployments_app.models import Approval, Deployment, PromotionPolicy, Target
from models_app.models import ModelVersion
from registry_site.models import AuditEvent
from registry_site.permissions import Operator
from tests.conftest import deploy, production_mode, registry_state

pytestmark = pytest.mark.django_db

# A TFLite FlatBuffer's identifier at bytes 4-8: its format check passes.
TFLITE = b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64


def target(name: str = "production") -> Target:
    return Target.objects.get(name=name)


def set_policy(name: str = "production", model=None, **rules) -> PromotionPolicy:
    return services.set_policy(target=target(name), model=model, rules=rules)


def checks_of(version: ModelVersion, where: str = "production", requester=None) -> dict[str, policies.RuleResult]:
    """The evaluation, by rule (and metric)."""
    version = ModelVersion.objects.select_related("model", "artifact").get(pk=version.pk)
    results = policies.evaluate(version=version, target=target(where), requester=requester or Operator())
    return {f"{r.rule} {r.metric}" if r.metric else r.rule: r for r in results}


def dry_run(api, model, version: str, where: str = "production") -> dict:
    response = deploy(api, model, version, where, dry_run=True)
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.fixture
def resnet(make_model, make_version):
    """resnet v1 (accuracy 0.9, auc 0.9, latency 20) active on production; v2 (accuracy 0.8, auc 0.88,
    latency 30, status testing) not deployed."""
    model = make_model(name="resnet")
    make_version(model, "v1", data=b"one", accuracy="0.9", metrics='{"auc": 0.9, "latency_ms": 20}')
    make_version(model, "v2", data=b"two", accuracy="0.8", status="testing", metrics='{"auc": 0.88, "latency_ms": 30}')
    services.deploy_version(version=ModelVersion.objects.get(model=model, version="v1"), target="production",
                            acting_user=Operator())  # fmt: skip
    return model


def v(model, version: str) -> ModelVersion:
    return ModelVersion.objects.get(model=model, version=version)


# --- No policy: nothing changes ------------------------------------------------------------------------
def test_without_a_policy_a_dry_run_allows_and_lists_no_rule(api, resnet):
    body = dry_run(api, resnet, "v2")
    assert body == {
        "dry_run": True,
        "allowed": True,
        "already_active": False,
        "model_name": "resnet",
        "version": "v2",
        "deployment_target": "production",
        "checks": [],
    }
    assert deploy(api, resnet, "v2").status_code == 201


# --- Each rule, passing and failing --------------------------------------------------------------------
def test_required_status(api, resnet):
    set_policy(required_status="approved")
    check = checks_of(v(resnet, "v2"))["status"]
    assert (check.passed, check.expected, check.seen) == (False, "approved", "testing")
    api.patch("/models/resnet/versions/v2", {"status": "approved"}, format="json")
    assert checks_of(v(resnet, "v2"))["status"].passed


def test_minimum_metrics_read_the_seed_fields_and_the_open_metrics(resnet):
    set_policy(min_metrics={"accuracy": 0.85, "auc": 0.85, "f1_score": 0.5})
    checks = checks_of(v(resnet, "v2"))
    assert (checks["min_metric accuracy"].passed, checks["min_metric accuracy"].seen) == (False, 0.8)
    assert (checks["min_metric auc"].passed, checks["min_metric auc"].seen) == (True, 0.88)
    missing = checks["min_metric f1_score"]  # the version has none: a minimum cannot be met by nothing
    assert (missing.passed, missing.seen, missing.expected) == (False, None, 0.5)


def test_not_worse_than_the_active_version_by_more_than_max_drop(resnet):
    set_policy(max_regressions=[{"metric": "auc", "max_drop": 0.01}, {"metric": "accuracy", "max_drop": 0.2}])
    checks = checks_of(v(resnet, "v2"))
    assert not checks["max_regression auc"].passed  # 0.88 against 0.9: worse by 0.02
    assert checks["max_regression auc"].seen == 0.88 and "at least 0.89" in checks["max_regression auc"].expected
    assert checks["max_regression accuracy"].passed  # worse by 0.1, within 0.2
    set_policy(max_regressions=[{"metric": "auc", "max_drop": 0.05}])
    assert checks_of(v(resnet, "v2"))["max_regression auc"].passed


def test_a_lower_is_better_metric_may_rise_by_at_most_max_drop(resnet):
    set_policy(max_regressions=[{"metric": "latency_ms", "max_drop": 5, "lower_is_better": True}])
    check = checks_of(v(resnet, "v2"))["max_regression latency_ms"]
    assert (check.passed, check.seen) == (False, 30.0) and "at most 25" in check.expected
    set_policy(max_regressions=[{"metric": "latency_ms", "max_drop": 10, "lower_is_better": True}])
    assert checks_of(v(resnet, "v2"))["max_regression latency_ms"].passed


def test_with_nothing_active_there_is_nothing_to_regress_from(resnet):
    set_policy("staging", max_regressions=[{"metric": "auc", "max_drop": 0}])
    assert checks_of(v(resnet, "v2"), "staging")["max_regression auc"].passed


def test_format_check_and_verified_file(resnet, make_version):
    set_policy(require_format_check=True, require_verified_file=True)
    checks = checks_of(v(resnet, "v2"))  # b"two" is no ONNX file
    assert (checks["format_check"].passed, checks["format_check"].seen) == (False, "failed")
    assert checks["file_verified"].passed and checks["file_verified"].seen == f"sha256 {v(resnet, 'v2').checksum}"
    good = make_version(resnet, "v3", data=TFLITE, format="tflite")
    assert checks_of(good)["format_check"].passed
    no_file = make_version(resnet, "v4", data=None)
    checks = checks_of(no_file)
    assert not checks["file_verified"].passed and not checks["format_check"].passed


def test_soak_on_staging(resnet):
    set_policy(soak_target="staging", soak_hours=24)
    check = checks_of(v(resnet, "v2"))["soak"]
    assert (check.passed, check.seen) == (False, None) and "not active on staging" in check.detail
    services.deploy_version(version=v(resnet, "v2"), target="staging", acting_user=Operator())
    staged = Deployment.objects.get(model_version__version="v2", deployment_target="staging")
    assert not checks_of(v(resnet, "v2"))["soak"].passed  # just deployed
    Deployment.objects.filter(pk=staged.pk).update(deployed_at=timezone.now() - timedelta(hours=25))
    check = checks_of(v(resnet, "v2"))["soak"]
    assert check.passed and check.seen >= 25


def test_an_alert_on_the_soak_target_restarts_the_soak(resnet):
    """ "Active on staging for 24 h without a firing alert": an alert of a staging rule (or of a rule of the
    whole model) that fires while the version is active there fails the soak, even once resolved; an alert
    of another target's rule does not count."""
    from deployments_app import alerts
    from deployments_app.models import Alert, AlertState

    set_policy(soak_target="staging", soak_hours=24)
    services.deploy_version(version=v(resnet, "v2"), target="staging", acting_user=Operator())
    staged = Deployment.objects.get(model_version__version="v2", deployment_target="staging")
    Deployment.objects.filter(pk=staged.pk).update(deployed_at=timezone.now() - timedelta(hours=25))
    assert checks_of(v(resnet, "v2"))["soak"].passed

    def alert_of(target_name, **fields) -> Alert:
        values = {"name": f"floor {target_name}", "metric": "accuracy", "aggregate": "avg", "window_points": 5,
                  "condition": "below", "threshold": 0.5, "target": target_name}  # fmt: skip
        rule = alerts.create_rule(model=resnet, values=values, acting_user=Operator())
        return Alert.objects.create(rule=rule, version=v(resnet, "v2"), value=0.1, reason="avg accuracy 0.1", **fields)

    alert_of("production")  # another target's rule: not the soak's business
    assert checks_of(v(resnet, "v2"))["soak"].passed
    fired = alert_of("staging")
    check = checks_of(v(resnet, "v2"))["soak"]
    assert not check.passed and "alert 'floor staging' is firing" in check.detail
    Alert.objects.filter(pk=fired.pk).update(state=AlertState.RESOLVED, resolved_at=timezone.now())
    check = checks_of(v(resnet, "v2"))["soak"]
    assert not check.passed and "alert 'floor staging' fired" in check.detail  # it fired during the soak
    Deployment.objects.filter(pk=staged.pk).update(deployed_at=timezone.now() - timedelta(minutes=1))
    Alert.objects.filter(pk=fired.pk).update(started_at=timezone.now() - timedelta(hours=2))
    check = checks_of(v(resnet, "v2"))["soak"]
    assert not check.passed and "alert '" not in check.detail  # resolved before this stay: only the hours count


def test_the_evaluation_costs_a_fixed_number_of_queries(resnet, django_assert_num_queries):
    rules = {"min_metrics": {"accuracy": 0.5, "auc": 0.5, "latency_ms": 1},
             "max_regressions": [{"metric": "auc", "max_drop": 1}, {"metric": "latency_ms", "max_drop": 1}],
             "approvals_required": 1, "soak_target": "staging", "soak_hours": 1}  # fmt: skip
    set_policy(**rules)
    set_policy(model=resnet, **rules)
    version = ModelVersion.objects.select_related("model", "artifact").get(pk=v(resnet, "v2").pk)
    # The policies, the active deployment, each version's named metrics once, and per policy the
    # approvals and the soak target's deployment.
    production = target()
    with django_assert_num_queries(2 + 2 + 2 * 2):
        results = policies.evaluate(version=version, target=production, requester=Operator())
    assert len(results) == 2 * 7


# --- Approvals: four eyes ------------------------------------------------------------------------------
def test_the_requesters_own_approval_does_not_count(resnet, persona, settings):
    alice, bob = persona("deployer", username="alice"), persona("deployer", username="bob")
    production_mode(settings)
    set_policy(approvals_required=1)
    approved = alice.client.post("/models/resnet/versions/v2/approvals", {"target": "Production"}, format="json")
    assert approved.status_code == 201, approved.json()
    assert approved.json()["user"] == "alice" and approved.json()["target"] == "production"

    refused = deploy(alice.client, resnet, "v2")
    assert refused.status_code == 409
    (check,) = refused.json()["checks"]
    assert (check["rule"], check["passed"], check["expected"], check["seen"]) == ("approvals", False, 1, 0)
    assert "own approval does not count" in check["detail"]

    # Bob deploys what Alice approved.
    assert deploy(bob.client, resnet, "v2").status_code == 201
    event = AuditEvent.objects.filter(action="deploy").latest("id")
    assert event.changes["policy_checks"][0]["passed"] is True and event.actor == "bob"


def test_approvals_are_listed_recorded_once_and_audited(resnet, persona, settings):
    alice, viewer = persona("deployer", username="alice"), persona("viewer")
    production_mode(settings)
    url = "/models/resnet/versions/v2/approvals"
    assert alice.client.post(url, {"target": "production", "comment": "looks good"}, format="json").status_code == 201
    again = alice.client.post(url, {"target": "production"}, format="json")
    assert again.status_code == 409 and "already" in again.json()["detail"]
    assert viewer.client.post(url, {"target": "production"}, format="json").status_code == 403
    unknown = alice.client.post(url, {"target": "nowhere"}, format="json")
    assert unknown.status_code == 400 and "target" in unknown.json()["errors"]
    listed = viewer.client.get(url).json()["results"]
    assert [(a["user"], a["target"], a["comment"]) for a in listed] == [("alice", "production", "looks good")]
    event = AuditEvent.objects.get(action="approve")
    assert event.actor == "alice" and event.changes["comment"] == "looks good"


def test_an_anonymous_caller_cannot_approve(api, resnet):
    response = api.post("/models/resnet/versions/v2/approvals", {"target": "production"}, format="json")
    assert response.status_code == 403 and not Approval.objects.exists()


# --- Refusals and dry runs ------------------------------------------------------------------------------
def test_a_refused_deploy_is_a_409_listing_every_failed_rule_and_writes_nothing(api, resnet, storage_dir):
    set_policy(required_status="approved", min_metrics={"accuracy": 0.85, "auc": 0.8}, approvals_required=2)
    before = registry_state(storage_dir)
    response = deploy(api, resnet, "v2")
    assert response.status_code == 409
    body = response.json()
    assert body["allowed"] is False
    failed = {(c["rule"], c.get("metric")): (c["expected"], c["seen"]) for c in body["checks"] if not c["passed"]}
    assert failed == {("status", None): ("approved", "testing"), ("min_metric", "accuracy"): (0.85, 0.8),
                      ("approvals", None): (2, 0)}  # fmt: skip
    assert [c["metric"] for c in body["checks"] if c["passed"]] == ["auc"]
    for words in ("status is testing", "min_metric: accuracy 0.8 < the minimum 0.85", "0 of 2 approvals"):
        assert words in body["detail"]
    assert registry_state(storage_dir) == before


def test_a_dry_run_answers_the_same_evaluation_with_200_and_writes_nothing(api, resnet, storage_dir):
    set_policy(required_status="approved", min_metrics={"accuracy": 0.85})
    before = registry_state(storage_dir)
    body = dry_run(api, resnet, "v2")
    assert body["allowed"] is False and [c["passed"] for c in body["checks"]] == [False, False]
    assert body["checks"] == deploy(api, resnet, "v2").json()["checks"]
    assert registry_state(storage_dir) == before
    set_policy(min_metrics={"accuracy": 0.5})
    assert dry_run(api, resnet, "v2")["allowed"] is True
    assert not Deployment.objects.filter(model_version__version="v2").exists()


def test_a_dry_run_still_refuses_what_a_deploy_refuses_outright(api, resnet):
    assert deploy(api, resnet, "v2", "nowhere", dry_run=True).status_code == 400
    assert deploy(api, resnet, "v9", dry_run=True).status_code == 404
    assert deploy(api, resnet, "v2", dry_run="yes please").status_code == 400


def test_redeploying_the_active_version_changes_nothing_whatever_the_policy(api, resnet):
    set_policy(required_status="approved")
    assert deploy(api, resnet, "v1").status_code == 200
    assert dry_run(api, resnet, "v1")["already_active"] is True


def test_a_models_policy_adds_to_its_targets(api, resnet, make_model, make_version):
    other = make_model(name="other")
    make_version(other, "v1", data=b"other", accuracy="0.8")
    set_policy(min_metrics={"accuracy": 0.5})
    set_policy(model=resnet, min_metrics={"accuracy": 0.85})
    checks = dry_run(api, resnet, "v2")["checks"]
    assert [(c["policy"], c["passed"]) for c in checks] == [("target", True), ("model", False)]
    assert dry_run(api, other, "v1")["allowed"] is True  # the model's policy is resnet's alone
    assert deploy(api, resnet, "v2").status_code == 409
    assert deploy(api, other, "v1").status_code == 201


# --- The deploy command --------------------------------------------------------------------------------
def test_the_deploy_command_obeys_the_policy(resnet):
    set_policy(min_metrics={"accuracy": 0.85})
    with pytest.raises(CommandError, match=r"refuses resnet:v2: min_metric: accuracy 0.8 < the minimum 0.85"):
        call_command("deploy", "resnet", "v2", "production")
    out = StringIO()
    with pytest.raises(CommandError, match="would refuse"):
        call_command("deploy", "resnet", "v2", "production", "--dry-run", stdout=out)
    assert "[FAIL] min_metric: accuracy 0.8 <" in out.getvalue() and "nothing was deployed" in out.getvalue()
    assert not Deployment.objects.filter(model_version__version="v2").exists()
    set_policy(min_metrics={"accuracy": 0.75})
    call_command("deploy", "resnet", "v2", "production", stdout=StringIO())
    assert Deployment.objects.get(model_version__version="v2").deployment_status == "active"


# --- The policies' routes -------------------------------------------------------------------------------
POLICY = {
    "required_status": "approved",
    "min_metrics": {"accuracy": 0.9, "auc": 0.85},
    "max_regressions": [{"metric": "auc", "max_drop": 0.01}],
    "require_format_check": True,
    "require_verified_file": True,
    "approvals_required": 1,
    "soak_target": "Staging",
    "soak_hours": 24,
}


def test_put_get_and_delete_a_targets_policy(resnet, persona, settings):
    admin, viewer = persona("admin"), persona("viewer")
    production_mode(settings)
    assert viewer.client.put("/targets/production/policy", POLICY, format="json").status_code == 403
    put = admin.client.put("/targets/production/policy", POLICY, format="json")
    assert put.status_code == 200, put.json()
    shown = viewer.client.get("/targets/production/policy").json()
    assert {k: shown[k] for k in POLICY} == {**POLICY, "soak_target": "staging"}
    assert shown["target"] == "production" and shown["model_name"] is None
    assert AuditEvent.objects.get(action="create_policy").changes["min_metrics"] == [None, POLICY["min_metrics"]]
    # PUT replaces the whole policy: what is left out is off.
    admin.client.put("/targets/production/policy", {"approvals_required": 2}, format="json")
    shown = viewer.client.get("/targets/production/policy").json()
    assert (shown["approvals_required"], shown["required_status"], shown["min_metrics"]) == (2, "", {})
    assert admin.client.delete("/targets/production/policy").status_code == 204
    assert not PromotionPolicy.objects.exists()
    assert viewer.client.get("/targets/production/policy").json()["updated_at"] is None


def test_a_models_policy_has_its_own_route(api, resnet):
    response = api.put("/models/resnet/targets/production/policy", {"min_metrics": {"auc": 0.95}}, format="json")
    assert response.status_code == 200 and response.json()["model_name"] == "resnet"
    assert api.get("/targets/production/policy").json()["min_metrics"] == {}
    assert api.get("/models/resnet/targets/production/policy").json()["min_metrics"] == {"auc": 0.95}
    assert api.get("/models/nope/targets/production/policy").status_code == 404
    assert api.get("/targets/nowhere/policy").status_code == 404
    assert api.options("/targets/production/policy").status_code == 200  # DRF asks for the object first
    assert api.options("/targets/nowhere/policy").status_code == 404


@pytest.mark.parametrize(
    "body, field",
    [
        ({"min_metrics": {"accuracy": "high"}}, "min_metrics"),
        ({"min_metrics": ["accuracy"]}, "min_metrics"),
        ({"min_metrics": {"bad__name": 1}}, "min_metrics"),
        ({"max_regressions": [{"metric": "auc"}]}, "max_regressions"),
        ({"max_regressions": [{"metric": "auc", "max_drop": -1}]}, "max_regressions"),
        ({"max_regressions": [{"metric": "auc", "max_drop": 1, "lower": True}]}, "max_regressions"),
        ({"required_status": "great"}, "required_status"),
        ({"approvals_required": 11}, "approvals_required"),
        ({"approvals_required": "2"}, "approvals_required"),
        ({"soak_target": "nowhere", "soak_hours": 1}, "soak_target"),
        ({"soak_target": "staging"}, "non_field_errors"),
        ({"soak_hours": 3}, "non_field_errors"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_policy_is_a_400_naming_the_field_and_writes_nothing(api, resnet, storage_dir, body, field):
    before = registry_state(storage_dir)
    response = api.put("/targets/production/policy", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"], response.json()
    assert registry_state(storage_dir) == before and not PromotionPolicy.objects.exists()


def test_a_soak_target_cannot_be_deleted_while_a_policy_names_it(api, resnet):
    api.post("/targets", {"name": "qa"}, format="json")
    set_policy(soak_target="qa", soak_hours=1)
    response = api.delete("/targets/qa")
    assert response.status_code == 409 and "soak target" in response.json()["detail"]
    assert Target.objects.filter(name="qa").exists()
    set_policy(soak_target=None)
    set_policy("qa", approvals_required=1)
    assert api.delete("/targets/qa").status_code == 204  # its own policy goes with it, recorded in the audit
    assert AuditEvent.objects.get(action="delete_target").changes["policies"][0]["approvals_required"] == 1
    assert not PromotionPolicy.objects.filter(target__name="qa").exists()


# --- The admin --------------------------------------------------------------------------------------------
def test_the_admins_deploy_form_shows_the_checks_before_the_button(admin_client, resnet):
    set_policy(min_metrics={"accuracy": 0.85, "auc": 0.8})
    changelist = reverse("admin:models_app_modelversion_changelist")
    picked = {"action": "deploy_to_target", "_selected_action": [v(resnet, "v2").pk]}
    first = admin_client.post(changelist, {**picked, "index": 0}).content.decode()
    assert 'name="check"' in first and 'name="apply"' not in first  # no button before the checks
    checked = admin_client.post(changelist, {**picked, "target": "production", "check": "1"}).content.decode()
    assert "refused by the promotion policy" in checked and 'name="apply"' in checked
    assert (
        "accuracy 0.8 &lt; the minimum 0.85" in checked
        and "FAIL" in checked
        and "auc 0.88 ≥ the minimum 0.8" in checked
    )
    admin_client.post(changelist, {**picked, "target": "production", "apply": "1"})
    assert not Deployment.objects.filter(model_version__version="v2").exists()  # the service refused it


def test_policies_are_managed_in_the_admin_through_the_service(admin_client, resnet):
    add = reverse("admin:deployments_app_promotionpolicy_add")
    form = {"target": target().pk, "model": "", "required_status": "approved", "min_metrics": '{"accuracy": 0.9}',
            "max_regressions": "[]", "approvals_required": 0, "soak_target": "", "soak_hours": 0}  # fmt: skip
    response = admin_client.post(add, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    policy = PromotionPolicy.objects.get()
    assert (policy.required_status, policy.min_metrics) == ("approved", {"accuracy": 0.9})
    assert AuditEvent.objects.get(action="create_policy").via == "admin"
    bad = admin_client.post(add, {**form, "target": target("staging").pk, "soak_hours": 5})
    assert bad.status_code == 200 and PromotionPolicy.objects.count() == 1


def test_the_admins_approve_action_records_the_users_approval(admin_client, admin_user, resnet):
    changelist = reverse("admin:models_app_modelversion_changelist")
    picked = {"action": "approve_for_target", "_selected_action": [v(resnet, "v2").pk]}
    admin_client.post(changelist, {**picked, "target": "production", "comment": "ok", "apply": "1"})
    approval = Approval.objects.get()
    assert (approval.user, approval.target.name, approval.comment) == (admin_user, "production", "ok")


# --- The database's own rules ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rows",
    [
        [{}, {}],  # two policies of the target's own
        [{"soak_hours": 5}],  # a soak without its target
        [{"approvals_required": 11}],
        [{"required_status": "great"}],
    ],
)
def test_the_database_refuses_what_the_service_would(resnet, rows):
    with pytest.raises(IntegrityError), transaction.atomic():
        for row in rows:
            PromotionPolicy.objects.create(target=target(), **row)


def test_the_database_keeps_one_approval_per_user_version_and_target(resnet, admin_user):
    Approval.objects.create(version=v(resnet, "v2"), target=target(), user=admin_user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(version=v(resnet, "v2"), target=target(), user=admin_user)
