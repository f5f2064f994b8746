"""The A/B tests' statistics (deployments_app.experiment_stats, standard library only) against scipy.stats
on known data sets; and GET /experiments/{id}/results, POST results, built on them."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats as scipy_stats

from deployments_app import experiment_stats as stats
from deployments_app.models import ResultBatch
from tests.test_experiments import state

CLOSE = 1e-9


def test_the_t_distribution_matches_scipy():
    rng = random.Random(11)
    for _ in range(1000):
        df = rng.choice([1, 2, 3, 4.5, 9.7, 30, 120, 1000, 54321.5])
        t = rng.uniform(-9, 9)
        assert stats.t_sf(t, df) == pytest.approx(scipy_stats.t.sf(t, df), abs=1e-10)
    for df in (1, 2, 5, 17.3, 100, 10_000):
        for p in (0.001, 0.025, 0.3, 0.5, 0.9, 0.975, 0.999):
            assert stats.t_ppf(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), abs=1e-9)


def test_the_chi_square_distribution_matches_scipy():
    rng = random.Random(12)
    for _ in range(1000):
        df, x = rng.randint(1, 9), rng.uniform(0, 80)
        assert stats.chi2_sf(x, df) == pytest.approx(scipy_stats.chi2.sf(x, df), abs=1e-12)


# Known data sets: (control conversions, exposures, treatment conversions, exposures).
RATES = [(200, 2000, 260, 2000), (45, 1000, 47, 1000), (1, 50, 0, 50), (5120, 100_000, 5390, 100_000)]


@pytest.mark.parametrize(("c1", "n1", "c2", "n2"), RATES)
def test_the_two_proportion_test_matches_scipy(c1, n1, c2, n2):
    result = stats.two_proportion_test(c1, n1, c2, n2)
    # The pooled two-proportion z-test is the 2x2 chi-square test without continuity correction.
    _, p_value, _, _ = scipy_stats.chi2_contingency([[c1, n1 - c1], [c2, n2 - c2]], correction=False)
    assert result.p_value == pytest.approx(p_value, rel=1e-8)
    p1, p2 = c1 / n1, c2 / n2
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    z = scipy_stats.norm.ppf(0.975)
    assert (result.difference.low, result.difference.high) == pytest.approx((p2 - p1 - z * se, p2 - p1 + z * se))
    estimate = stats.rate_estimate(c2, n2)
    assert estimate.value == p2
    assert estimate.high - estimate.value == pytest.approx(min(1 - p2, z * math.sqrt(p2 * (1 - p2) / n2)))


def _sample(values: list[float]) -> stats.Sample:
    return stats.Sample(len(values), sum(values), sum(v * v for v in values))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_welchs_t_test_and_the_mean_intervals_match_scipy(seed):
    rng = random.Random(seed)
    control = [rng.gauss(120, 30) for _ in range(rng.randint(5, 400))]
    treatment = [rng.gauss(112, 45) for _ in range(rng.randint(5, 400))]
    result = stats.welch_test(_sample(control), _sample(treatment))
    reference = scipy_stats.ttest_ind(treatment, control, equal_var=False)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-7)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-9)
    interval = reference.confidence_interval(0.95)
    assert (result.difference.low, result.difference.high) == pytest.approx((interval.low, interval.high), rel=1e-7)
    estimate = stats.mean_estimate(_sample(control))
    low, high = scipy_stats.t.interval(
        0.95, len(control) - 1, loc=scipy_stats.tmean(control), scale=scipy_stats.sem(control)
    )
    assert (estimate.low, estimate.high) == pytest.approx((low, high), rel=1e-9)


@pytest.mark.parametrize(
    ("exposures", "weights"),
    [
        ([5000, 5000], [5000, 5000]),
        ([9100, 900], [9000, 1000]),
        ([5300, 4700], [5000, 5000]),
        ([40, 30, 30], [4000, 3000, 3000]),
    ],
)
def test_the_sample_ratio_check_matches_scipy(exposures, weights):
    check = stats.sample_ratio_check(exposures, weights)
    total = sum(exposures)
    reference = scipy_stats.chisquare(exposures, [total * w / sum(weights) for w in weights])
    assert check.chi_square == pytest.approx(reference.statistic, abs=CLOSE)
    assert check.p_value == pytest.approx(reference.pvalue, rel=1e-8, abs=1e-300)
    assert check.mismatch == (reference.pvalue < 0.001)


# --- Through the API --------------------------------------------------------------------------------
def _experiment(api, world, **extra) -> int:
    response = api.post(
        "/models/resnet/targets/staging/experiments",
        {
            "name": "results",
            "variants": [
                {"version": "v1", "weight": 5000, "is_control": True, "name": "control"},
                {"version": "v2", "weight": 5000, "name": "candidate"},
            ],
            **extra,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    pk = response.json()["id"]
    assert api.post(f"/experiments/{pk}/start").status_code == 200
    return pk


def report(api, pk: int, *batches: dict):
    return api.post(f"/experiments/{pk}/results", {"batches": list(batches)}, format="json")


@pytest.mark.django_db
def test_rate_results_and_their_verdicts(api, world):
    pk = _experiment(api, world)
    assert "Not enough data" in api.get(f"/experiments/{pk}/results").json()["verdict"]
    response = report(
        api,
        pk,
        {"variant": "control", "exposures": 1000, "conversions": 100, "observed_at": "2026-01-01T10:00:00Z"},
        {"variant": "candidate", "exposures": 1000, "conversions": 130},
        {"variant": "control", "exposures": 1000, "conversions": 100},
        {"variant": "candidate", "exposures": 1000, "conversions": 130},
    )
    assert response.status_code == 201 and response.json() == {"recorded": 4}
    results = api.get(f"/experiments/{pk}/results").json()
    control, candidate = results["variants"]
    assert (control["units"], control["conversions"], candidate["conversions"]) == (2000, 200, 260)
    reference = stats.two_proportion_test(200, 2000, 260, 2000)
    assert candidate["comparison"]["p_value"] == pytest.approx(reference.p_value)
    assert candidate["comparison"]["relative_lift"] == pytest.approx(0.3)
    assert candidate["estimate"]["value"] == pytest.approx(0.13)
    assert control["comparison"] is None
    assert results["sample_ratio"]["mismatch"] is False
    assert results["verdict"] == "Variant 'candidate' is better than the control."
    assert results["suggested_winner"] == "candidate"


@pytest.mark.django_db
def test_a_broken_split_is_flagged(api, world):
    pk = _experiment(api, world)
    report(
        api,
        pk,
        {"variant": "control", "exposures": 6000, "conversions": 600},
        {"variant": "candidate", "exposures": 4000, "conversions": 400},
    )
    results = api.get(f"/experiments/{pk}/results").json()
    assert results["sample_ratio"]["mismatch"] is True
    assert results["verdict"].startswith("Sample ratio mismatch") and results["suggested_winner"] is None


@pytest.mark.django_db
def test_mean_results_lower_is_better(api, world):
    pk = _experiment(api, world, metric="latency_ms", metric_kind="mean", higher_is_better=False, min_samples=50)
    rng = random.Random(5)
    control = [rng.gauss(100, 10) for _ in range(300)]
    candidate = [rng.gauss(90, 12) for _ in range(300)]
    for name, values in (("control", control), ("candidate", candidate)):
        assert (
            report(
                api, pk, {"variant": name, **_as_batch(values[:150])}, {"variant": name, **_as_batch(values[150:])}
            ).status_code
            == 201
        )
    results = api.get(f"/experiments/{pk}/results").json()
    reference = scipy_stats.ttest_ind(candidate, control, equal_var=False)
    comparison = results["variants"][1]["comparison"]
    assert comparison["p_value"] == pytest.approx(reference.pvalue, rel=1e-6, abs=1e-300)
    assert comparison["difference"] == pytest.approx(sum(candidate) / 300 - sum(control) / 300)
    assert results["verdict"] == "Variant 'candidate' is better than the control."


def _as_batch(values: list[float]) -> dict:
    return {"count": len(values), "sum": sum(values), "sum_sq": sum(v * v for v in values)}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("batch", "words"),
    [
        ({"variant": "control", "exposures": -1, "conversions": 0}, "greater than or equal to 0"),
        ({"variant": "control", "exposures": 10, "conversions": 11}, "batches[1].conversions: 11 is more than"),
        ({"variant": "nobody", "exposures": 10, "conversions": 1}, "batches[1].variant: no variant named"),
        ({"variant": "control", "exposures": 10}, "batches[1].conversions: required"),
        ({"variant": "control", "count": 10, "sum": 1.0, "sum_sq": 1.0}, "not taken by a rate metric"),
        ({"variant": "control", "exposures": "10", "conversions": 1}, "valid integer"),
        # Past any database integer: a 400, not the database's overflow (a 500).
        (
            {"variant": "control", "exposures": 2**70, "conversions": 0},
            "batches[1].exposures: at most 1,000,000,000,000",
        ),
        ({"variant": "control", "exposures": 10**12 + 1, "conversions": 0}, "in one batch (1,000,000,000,001 given)"),
    ],
)
def test_bad_batches_are_refused_and_nothing_is_recorded(api, world, batch, words, storage_dir):
    pk = _experiment(api, world)
    before = state(storage_dir)
    response = report(api, pk, {"variant": "candidate", "exposures": 5, "conversions": 1}, batch)
    assert response.status_code == 400 and "batches" in response.json()["errors"]
    assert words in str(response.json()), response.json()
    assert state(storage_dir) == before
    assert not ResultBatch.objects.exists()


@pytest.mark.django_db
def test_a_mean_batch_must_be_possible(api, world):
    pk = _experiment(api, world, metric_kind="mean")
    response = report(api, pk, {"variant": "control", "count": 4, "sum": 10.0, "sum_sq": 1.0})
    assert response.status_code == 400 and "cannot be the sum of squares" in response.json()["detail"]
    assert report(api, pk, {"variant": "control", "count": 4, "sum": 10.0, "sum_sq": 25.0}).status_code == 201


@pytest.mark.django_db
def test_results_of_a_draft_or_concluded_experiment_are_refused(api, world):
    response = api.post(
        "/models/resnet/targets/staging/experiments",
        {
            "name": "d",
            "variants": [{"version": "v1", "weight": 5000, "is_control": True}, {"version": "v2", "weight": 5000}],
        },
        format="json",
    )
    answer = report(api, response.json()["id"], {"variant": "v1", "exposures": 1, "conversions": 0})
    assert answer.status_code == 409 and "state" in answer.json()["errors"]
