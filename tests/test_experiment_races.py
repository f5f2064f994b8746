"""Two starts at once (issue #11): on PostgreSQL, threads with connections of their own start two
experiments of one model on one target together, many times; exactly one runs each time, the other is a
409, never a 500 nor two running. The model's row lock serializes them; the partial unique index would
refuse the second even without it."""

from __future__ import annotations

import pytest
from django.db import connection, connections

from deployments_app import experiments
from deployments_app.models import Experiment, ExperimentState
from registry_site.errors import Conflict
from registry_site.permissions import Operator
from tests.live import all_at_once

ROUNDS = 5


def _start(pk: int):
    def call():
        try:
            experiments.start_experiment(experiment=Experiment.objects.get(pk=pk), acting_user=Operator())
            return "started"
        except Conflict as exc:
            return f"409: {exc.message}"
        finally:
            connections.close_all()  # this thread's connection

    return call


@pytest.mark.django_db(transaction=True)
def test_two_starts_at_once_one_wins(world):
    if connection.vendor != "postgresql":
        pytest.skip("threads with their own connections race on PostgreSQL; SQLite's test database is one file lock")
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
        assert outcomes.count("started") == 1, outcomes
        assert all(o == "started" or o.startswith("409: ") for o in outcomes), outcomes
        live = Experiment.objects.filter(model=world.model, state=ExperimentState.RUNNING)
        assert live.count() == 1
        experiments.stop_experiment(experiment=live.get())
