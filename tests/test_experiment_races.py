"""Two starts at once (issue #11): on PostgreSQL, threads with connections of their own start two
experiments of one model on one target together, many times; exactly one runs each time, the other is a
409, never a 500 nor two running. The model's row lock serializes them; the partial unique index would
refuse the second even without it."""

from __future__ import annotations

import pytest
from django.db import connection, connections  # noqa: F401  (connection: the skipif condition reads it)
from django.test import Client

from deployments_app import experiments
from deployments_app.models import Experiment, ExperimentState
from registry_site.permissions import Operator
from tests.live import all_at_once

ROUNDS = 5
postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="needs PostgreSQL's row locks (SELECT ... FOR UPDATE)"
)


def _start(pk: int):
    """POST /experiments/{pk}/start through the whole stack, on this thread's own database connection."""

    def call():
        try:
            response = Client(raise_request_exception=False, HTTP_HOST="localhost").post(f"/experiments/{pk}/start")
            return response.status_code, response.json()
        finally:
            connections.close_all()

    return call


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_starts_at_once_one_wins(world):
    spec = [experiments.VariantSpec("v1", 5000, is_control=True), experiments.VariantSpec("v2", 5000)]
    for round_ in range(ROUNDS):
        made = [
            experiments.create_experiment(
                model=world.model, target="staging", name=f"r{round_}-{i}", variants=spec, acting_user=Operator()
            )
            for i in range(2)
        ]
        # Two different experiments, and the same one twice.
        outcomes = all_at_once([_start(made[0].pk), _start(made[1].pk), _start(made[0].pk)])
        assert sorted(code for code, _ in outcomes) == [200, 409, 409], outcomes
        assert all("state" in answer["errors"] for code, answer in outcomes if code == 409), outcomes
        live = Experiment.objects.filter(model=world.model, state=ExperimentState.RUNNING)
        assert live.count() == 1
        experiments.stop_experiment(experiment=live.get())
