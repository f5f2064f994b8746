"""A write racing the delete of its model: whichever gets the model's lock first wins, and the other gets
a JSON 404 or 409, never a 500. Two deletes of one model: one 204 and one 404.

The interleaving tests make the race happen every time: the test holds the model's row lock (as a delete
in progress does), lets a request look the model up and wait on that lock, then deletes the model and
commits. They need PostgreSQL's row locks; the tests of the services with a stale object run on both."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
from django.db import connection, transaction
from django.test import Client

from deployments_app.models import Deployment
from deployments_app.services import deploy_version, rollback_deployment
from models_app import services
from models_app.models import ModelVersion, RegisteredModel
from registry_site.errors import NotFound
from registry_site.permissions import Operator

postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="needs PostgreSQL's row locks (SELECT ... FOR UPDATE)"
)


def _request(method: str, path: str, body: dict | None = None):
    """One request through the whole stack (middleware, error handlers) on this thread's own database
    connection, as a gunicorn thread makes it; a server error is answered, not raised into the test."""
    client = Client(raise_request_exception=False, HTTP_HOST="localhost")
    try:
        if body is None:
            return getattr(client, method)(path)
        return getattr(client, method)(path, body, content_type="application/json")
    finally:
        connection.close()


def _assert_json_outcome(response, allowed: set[int]) -> None:
    assert response.status_code in allowed, (response.status_code, response.content[:300])
    if response.status_code != 204:
        assert response["Content-Type"] == "application/json", response.content[:300]
        assert response.json()


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else the view is frozen for this transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


def _while_the_model_is_being_deleted(model: RegisteredModel, call: Callable):
    """Run `call` in another thread while this test holds the model's lock; once `call` waits on it,
    delete the model and commit. Returns what `call` returned."""
    result: dict = {}
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().get(pk=model.pk)
        worker = threading.Thread(target=lambda: result.update(response=call()))
        worker.start()
        deadline = time.monotonic() + 20
        while not _waiting_on_a_lock():
            assert worker.is_alive() and time.monotonic() < deadline, "the request never waited on the model's lock"
            time.sleep(0.02)
        RegisteredModel.objects.filter(pk=model.pk).delete()
    worker.join(30)
    assert not worker.is_alive()
    return result["response"]


@pytest.fixture
def doomed(make_model, make_version) -> RegisteredModel:
    """A model with two versions with files and no deployment: free to delete."""
    model = make_model(name="doomed")
    make_version(model, "v1", data=b"one")
    make_version(model, "v2", data=b"two")
    return model


@postgres_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "method, path, body",
    [
        ("post", "/deploy", {"model_name": "doomed", "version": "v1", "deployment_target": "staging"}),
        ("delete", "/models/doomed", None),
        ("patch", "/models/doomed", {"description": "changed"}),
        ("post", "/models/doomed/versions/v2/default", None),
        ("patch", "/models/doomed/versions/v1", {"release_notes": "changed"}),
        ("delete", "/models/doomed/versions/v2", None),
        ("post", "/models/doomed/versions", {"version": "v3", "format": "onnx"}),
    ],
)
def test_a_write_that_waited_on_a_deleted_model_is_a_json_404(doomed, method, path, body):
    response = _while_the_model_is_being_deleted(doomed, lambda: _request(method, path, body))

    _assert_json_outcome(response, {404})
    assert "deleted" in response.json()["detail"]
    assert not RegisteredModel.objects.filter(name="doomed").exists()
    assert not Deployment.objects.exists()


def _all_at_once(*calls: Callable) -> list:
    """Run the calls in threads released together; their responses in the calls' order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_deploys_and_deletes_racing_answer_json_and_leave_a_consistent_registry(make_model, make_version):
    """The issue's race, many times over: two deploys and two deletes of one model at once, through the
    whole stack on separate connections. Either a deploy wins (the deletes are 409: it is deployed now)
    or a delete does (the other delete and the deploys that came later are 404)."""
    for round_ in range(8):
        name = f"race{round_}"
        make_version(make_model(name=name), "v1", data=f"weights {round_}".encode())
        body = {"model_name": name, "version": "v1", "deployment_target": "staging"}
        *deploys, first_delete, second_delete = _all_at_once(
            partial(_request, "post", "/deploy", body),
            partial(_request, "post", "/deploy", {**body, "deployment_target": "canary"}),
            partial(_request, "delete", f"/models/{name}"),
            partial(_request, "delete", f"/models/{name}"),
        )
        for response in deploys:
            _assert_json_outcome(response, {201, 404})
        deletes = sorted([first_delete, second_delete], key=lambda response: response.status_code)
        for response in deletes:
            _assert_json_outcome(response, {204, 404, 409})
        if RegisteredModel.objects.filter(name=name).exists():
            assert [r.status_code for r in deletes] == [409, 409]
            deployed = sum(r.status_code == 201 for r in deploys)
            assert Deployment.objects.filter(model__name=name).count() == deployed >= 1
        else:
            assert [r.status_code for r in deletes] == [204, 404]
            assert all(r.status_code == 404 for r in deploys)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_deletes_of_one_model_are_one_204_and_one_404(doomed):
    responses = _all_at_once(*[partial(_request, "delete", "/models/doomed")] * 2)

    assert sorted(r.status_code for r in responses) == [204, 404]
    _assert_json_outcome(next(r for r in responses if r.status_code == 404), {404})
    assert not RegisteredModel.objects.filter(name="doomed").exists()


# --- The services, given an object another caller has deleted since it was looked up ----------------
def test_deploying_a_version_whose_model_was_deleted_is_not_found(doomed):
    version = ModelVersion.objects.get(model=doomed, version="v1")
    services.delete_model(model=RegisteredModel.objects.get(pk=doomed.pk))

    with pytest.raises(NotFound, match="deleted"):
        deploy_version(version=version, target="staging", acting_user=Operator())
    assert not Deployment.objects.exists()


def test_deleting_a_model_twice_is_not_found(doomed):
    stale = RegisteredModel.objects.get(pk=doomed.pk)
    services.delete_model(model=doomed)

    with pytest.raises(NotFound, match="deleted"):
        services.delete_model(model=stale)


def test_changing_a_deleted_model_is_not_found(doomed):
    stale = RegisteredModel.objects.get(pk=doomed.pk)
    services.delete_model(model=doomed)

    with pytest.raises(NotFound, match="deleted"):
        services.update_model(model=stale, changes={"description": "changed"})


def test_rolling_back_a_deployment_of_a_deleted_model_is_not_found(doomed):
    version = ModelVersion.objects.get(model=doomed, version="v1")
    deployment = deploy_version(version=version, target="staging", acting_user=Operator()).deployment
    rollback_deployment(deployment=deployment)
    services.delete_model(model=doomed)  # nothing active any more: the history goes with the model

    with pytest.raises(NotFound, match="deleted"):
        rollback_deployment(deployment=deployment)
