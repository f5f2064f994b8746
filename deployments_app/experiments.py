"""A/B tests of a model's versions on a deployment target (issue #11): the experiment's life (create,
start, pause, resume, change weights, stop, conclude), the assignment of a unit to a variant, the
results serving systems report, and the statistics that judge them. Called by the API, the admin and
`manage.py experiments` alike.

Every write locks the model's row first, as deploys do (deployments_app.services), then the
experiment's: the life of a model's experiments and its deployments take turns across all workers. The
database backs the rule "one running or paused experiment per model and target" with a partial unique
index.

Assignment (documented in the README, published by GET /experiments/{id} so a serving system can compute
it locally): a unit's bucket is

    int.from_bytes(sha256(f"{salt}:{key}".encode()).digest()[:8], "big") % 10000

and each variant owns fixed ranges of buckets. The treatments (every variant but the control, in the
order of their ids) each own a slot of 10000 // (number of treatments) buckets, and take the first
`weight` buckets of their slot; the control takes every other bucket. Ramping a treatment from 10% to
20% therefore only moves units from the control to it: a unit in the treatment stays there. The price:
a treatment's weight is at most its slot's size (all of it with one treatment, half each with two).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min, QuerySet, Sum
from django.db.models.functions import Coalesce, Lower
from django.urls import reverse
from django.utils import timezone

from deployments_app import experiment_stats as stats
from deployments_app import selectors
from deployments_app.models import (
    BUCKETS,
    LIVE_STATES,
    MAX_VARIANTS,
    MIN_VARIANTS,
    Deployment,
    DeploymentStatus,
    Experiment,
    ExperimentState,
    MetricKind,
    ResultBatch,
    Target,
    Variant,
)
from deployments_app.services import check_may_deploy, check_policies, deploy_version
from models_app import selectors as model_selectors
from models_app import services as model_services
from models_app.models import ModelVersion, RegisteredModel, VersionStatus
from registry_site import audit
from registry_site.errors import Conflict, InvalidInput, NotFound
from registry_site.permissions import Caller
from registry_site.prepared import PreparedQuery
from registry_site.validators import clean_fields, metric_value

MAX_BATCHES = 1000  # per POST of results
# Units (exposures, conversions, a mean's count) in one batch: a trillion is more than any serving system
# sees between two reports, and keeps the columns' sums far inside a 64-bit integer (SQLite's SUM fails
# on overflow instead of widening), where an unbounded count was a 500 from the database.
MAX_UNITS_PER_BATCH = 10**12
# Which transitions each act allows: from these states, to that one.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "start": ((ExperimentState.DRAFT,), ExperimentState.RUNNING),
    "pause": ((ExperimentState.RUNNING,), ExperimentState.PAUSED),
    "resume": ((ExperimentState.PAUSED,), ExperimentState.RUNNING),
    "stop": ((ExperimentState.RUNNING, ExperimentState.PAUSED), ExperimentState.STOPPED),
    "conclude": (
        (ExperimentState.RUNNING, ExperimentState.PAUSED, ExperimentState.STOPPED),
        ExperimentState.CONCLUDED,
    ),
}
WEIGHTS_CHANGEABLE = (ExperimentState.DRAFT, ExperimentState.RUNNING, ExperimentState.PAUSED)
RESULTS_ACCEPTED = (ExperimentState.RUNNING, ExperimentState.PAUSED, ExperimentState.STOPPED)


@dataclass(frozen=True)
class VariantSpec:
    version: str  # the version string, of the experiment's model
    weight: int  # basis points of the traffic (10000 = all)
    name: str = ""  # defaults to the version string
    is_control: bool = False


# --- Assignment ------------------------------------------------------------------------------------
def bucket_of(salt: str, key: str) -> int:
    """The unit's bucket, 0..9999: the documented formula (module docstring)."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def bucket_ranges(variants: list[Variant]) -> dict[int, list[tuple[int, int]]]:
    """Each variant's bucket ranges [start, end), by variant id: the treatments' at the start of their
    slots, the control's everything else. `variants` in id order, exactly one of them the control."""
    treatments = [v for v in variants if not v.is_control]
    slot = BUCKETS // max(1, len(treatments))
    ranges: dict[int, list[tuple[int, int]]] = {v.pk: [] for v in variants}
    control = next(v for v in variants if v.is_control)
    position = 0
    for index, variant in enumerate(treatments):
        start = index * slot
        if variant.weight:
            ranges[variant.pk].append((start, start + variant.weight))
        if start + variant.weight > position:
            if start > position:
                ranges[control.pk].append((position, start))
            position = start + variant.weight
    if position < BUCKETS:
        ranges[control.pk].append((position, BUCKETS))
    # Merge the control's touching ranges (a treatment of weight 0 leaves no gap).
    merged: list[tuple[int, int]] = []
    for start, end in ranges[control.pk]:
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        elif end > start:
            merged.append((start, end))
    ranges[control.pk] = merged
    return ranges


def variant_for_bucket(variants: list[Variant], bucket: int) -> Variant:
    """The variant owning `bucket` (variants in id order)."""
    treatments = [v for v in variants if not v.is_control]
    slot = BUCKETS // max(1, len(treatments))
    index = bucket // slot
    if index < len(treatments) and bucket - index * slot < treatments[index].weight:
        return treatments[index]
    return next(v for v in variants if v.is_control)


@dataclass(frozen=True)
class Assignment:
    version: ModelVersion
    experiment: Experiment | None = None
    variant: Variant | None = None
    bucket: int | None = None


def _live_variants(model: str, target: str) -> QuerySet[Variant]:
    """The variants of the experiment running or paused for `model` on `target` (a target's name folded
    to lower case, as targets are one whatever the case), with what an assignment reads of them."""
    return (
        Variant.objects.select_related("experiment", "version")
        .only(
            "name",
            "weight",
            "is_control",
            "experiment__state",
            "experiment__salt",
            "version__version",
            "version__artifact",
        )
        .annotate(target_folded=Lower("experiment__target__name"))
        .filter(experiment__model__name=model, target_folded=target, experiment__state__in=LIVE_STATES)
        .order_by("id")
    )


def _active_deployment(model: str, target: str) -> QuerySet[Deployment]:
    return (
        Deployment.objects.select_related("model_version")
        .only("model_version__version", "model_version__artifact")
        .annotate(target_folded=Lower("deployment_target"))
        .filter(model__name=model, target_folded=target, deployment_status=DeploymentStatus.ACTIVE)
        .order_by()[:1]
    )


# The assignment's two reads, compiled once (registry_site.prepared): compiling them cost more than half
# of the request's CPU, and this route is called for every unit a serving system sees (issue #11 §2).
_LIVE_VARIANTS = PreparedQuery(_live_variants, "model", "target")
_ACTIVE_DEPLOYMENT = PreparedQuery(_active_deployment, "model", "target")


def assign(*, model_name: str, target_name: str, key: str) -> Assignment:
    """Which version serves unit `key` of `model_name` on `target_name`: its variant's, while an
    experiment runs there (a paused one answers its control to every unit); the target's active version
    otherwise. One query with an experiment, two without; a 404 naming what is missing when nothing
    serves there. The Assignment's version has its `version` and `artifact_id` (the sha256) read."""
    variants = _LIVE_VARIANTS.all(model=model_name, target=target_name.lower())
    if variants:
        experiment = variants[0].experiment
        if experiment.state == ExperimentState.PAUSED:
            control = next(v for v in variants if v.is_control)
            return Assignment(control.version, experiment, control, None)
        bucket = bucket_of(experiment.salt, key)
        variant = variant_for_bucket(variants, bucket)
        return Assignment(variant.version, experiment, variant, bucket)
    active = _ACTIVE_DEPLOYMENT.first(model=model_name, target=target_name.lower())
    if active is None:
        model = model_selectors.get_model(model_name)
        target = selectors.get_target_or_404(target_name)
        raise NotFound(
            f"No version of model '{model.name}' is active on target '{target.name}', and no experiment runs "
            "there: deploy one first."
        )
    return Assignment(active.model_version)


def file_url(model_name: str, version: ModelVersion) -> str:
    return reverse("version-file", kwargs={"name": model_name, "version": version.version})


# --- Reads ------------------------------------------------------------------------------------------
def experiments() -> QuerySet[Experiment]:
    return Experiment.objects.select_related("model", "target").prefetch_related("variants__version")


def get_experiment(pk: int) -> Experiment:
    found = experiments().filter(pk=pk).first()
    if found is None:
        raise NotFound(f"Experiment {pk} not found.")
    return found


def configuration(experiment: Experiment) -> dict[str, Any]:
    """What a serving system needs to assign units itself: the salt, the formula, and each variant's
    bucket ranges, in the order the ranges are laid out."""
    variants = sorted(experiment.variants.all(), key=lambda v: v.pk)
    ranges = bucket_ranges(variants)
    return {
        "salt": experiment.salt,
        "buckets": BUCKETS,
        "hash": 'int.from_bytes(sha256(f"{salt}:{key}".encode("utf-8")).digest()[:8], "big") % 10000',
        "ranges": [
            {"variant": v.name, "version": v.version.version, "ranges": [list(r) for r in ranges[v.pk]]}
            for v in variants
        ],
    }


def results(experiment: Experiment) -> dict[str, Any]:
    """The experiment's results so far: per variant the totals, the estimate with its 95% interval and,
    against the control, the difference, the relative lift and the test's p-value (two-proportion z-test
    for rates, Welch's t-test for means); the sample-ratio check; and a plain verdict. One query for the
    totals. Multiple treatments are judged at ALPHA / (number of treatments) (Bonferroni)."""
    variants = sorted(experiment.variants.all(), key=lambda v: v.pk)
    totals = {
        row["variant"]: row
        for row in ResultBatch.objects.filter(variant__experiment=experiment)
        .values("variant")
        .annotate(
            units=Coalesce(Sum("exposures"), 0),
            conversions=Coalesce(Sum("conversions"), 0),
            total=Coalesce(Sum("total"), 0.0),
            total_sq=Coalesce(Sum("total_sq"), 0.0),
            batches=Count("id"),
            first=Min("observed_at"),
            last=Max("observed_at"),
        )
        .order_by()
    }
    empty = {"units": 0, "conversions": 0, "total": 0.0, "total_sq": 0.0, "batches": 0}
    rate = experiment.metric_kind == MetricKind.RATE
    control = next(v for v in variants if v.is_control)
    treatments = [v for v in variants if not v.is_control]
    alpha = stats.ALPHA / max(1, len(treatments))

    def sample(variant: Variant) -> stats.Sample:
        row = totals.get(variant.pk, empty)
        return stats.Sample(int(row["units"]), float(row["total"]), float(row["total_sq"]))

    rows = []
    for variant in variants:
        row = totals.get(variant.pk, empty)
        units = int(row["units"])
        entry: dict[str, Any] = {
            "variant": variant.name,
            "version": variant.version.version,
            "is_control": variant.is_control,
            "weight": variant.weight,
            "units": units,
            "batches": row["batches"],
            "estimate": None,
            "comparison": None,
        }
        if rate:
            entry["conversions"] = int(row["conversions"])
        else:
            entry["sum"], entry["sum_sq"] = float(row["total"]), float(row["total_sq"])
        if units:
            estimate = (
                stats.rate_estimate(int(row["conversions"]), units) if rate else stats.mean_estimate(sample(variant))
            )
            entry["estimate"] = {"value": estimate.value, "ci_low": estimate.low, "ci_high": estimate.high}
        control_row = totals.get(control.pk, empty)
        if not variant.is_control and units and control_row["units"]:
            if rate:
                comparison = stats.two_proportion_test(
                    int(control_row["conversions"]), int(control_row["units"]), int(row["conversions"]), units
                )
            else:
                comparison = stats.welch_test(sample(control), sample(variant))
            entry["comparison"] = {
                "difference": comparison.difference.value,
                "ci_low": comparison.difference.low,
                "ci_high": comparison.difference.high,
                "relative_lift": comparison.relative_lift,
                "p_value": comparison.p_value,
                "statistic": comparison.statistic,
                "significant": comparison.p_value < alpha,
            }
        rows.append(entry)

    ratio = stats.sample_ratio_check([r["units"] for r in rows], [v.weight for v in variants])
    short = [
        r["variant"] for r, v in zip(rows, variants, strict=True) if v.weight and r["units"] < experiment.min_samples
    ]
    verdict, winner = _verdict(experiment, rows, ratio, short)
    return {
        "experiment": experiment.pk,
        "state": experiment.state,
        "metric": experiment.metric,
        "metric_kind": experiment.metric_kind,
        "higher_is_better": experiment.higher_is_better,
        "confidence": stats.CONFIDENCE,
        "alpha": alpha,
        "min_samples": experiment.min_samples,
        "variants": rows,
        "sample_ratio": {"chi_square": ratio.chi_square, "p_value": ratio.p_value, "mismatch": ratio.mismatch},
        "verdict": verdict,
        "suggested_winner": winner,
    }


def _verdict(
    experiment: Experiment, rows: list[dict[str, Any]], ratio: stats.RatioCheck, short: list[str]
) -> tuple[str, str | None]:
    """The verdict in words, and the variant it suggests concluding with (None: keep the control, or
    nothing can be said yet)."""
    if short:
        return (f"Not enough data: {', '.join(short)} have fewer than {experiment.min_samples} units.", None)
    if ratio.mismatch:
        return (
            f"Sample ratio mismatch (chi-square p = {ratio.p_value:.2g}): the exposures do not follow the "
            "weights, so the split is broken and no comparison can be trusted.",
            None,
        )
    sign = 1 if experiment.higher_is_better else -1
    better = [
        r
        for r in rows
        if r["comparison"] and r["comparison"]["significant"] and sign * r["comparison"]["difference"] > 0
    ]
    worse = [
        r
        for r in rows
        if r["comparison"] and r["comparison"]["significant"] and sign * r["comparison"]["difference"] < 0
    ]
    if better:
        best = max(better, key=lambda r: sign * r["comparison"]["difference"])
        return (f"Variant '{best['variant']}' is better than the control.", best["variant"])
    if worse:
        names = ", ".join(f"'{r['variant']}'" for r in worse)
        return (f"Variant {names} {'is' if len(worse) == 1 else 'are'} worse than the control.", None)
    return ("No significant difference from the control.", None)


# --- The rule of which versions may be variants -----------------------------------------------------
def check_variant_deployable(*, version: ModelVersion, target: Target, acting_user: Caller) -> None:
    """May `version` serve traffic on `target` as a variant? The conditions deployments_app.services.
    deploy_version puts on deploying it there: not archived, with a file, the caller may deploy there
    (services.check_may_deploy: a protected target's deployer role, a token's deploy targets), and the
    target's promotion policies pass (services.check_policies), unless the version is the one active
    there already, which a deploy never refuses either. This is the one place a variant is judged, at
    create and at start, so a variant never serves what could not be deployed."""
    if version.status == VersionStatus.ARCHIVED:
        raise Conflict(f"Version '{version.version}' is archived and cannot be a variant.", field="variants")
    if not version.artifact_id:
        raise Conflict(
            f"Version '{version.version}' has no file; attach one before making it a variant.", field="variants"
        )
    check_may_deploy(acting_user, target, field="target")
    active = selectors.active_deployment(version.model_id, target)
    if active is None or active.model_version_id != version.pk:
        check_policies(version=version, target=target, acting_user=acting_user)


# --- Writes ------------------------------------------------------------------------------------------
def _check_weights(variants: list[Variant]) -> None:
    """2 to 10 variants, one control, weights summing to 100% (10000 basis points), each treatment's
    within its slot (module docstring)."""
    if not MIN_VARIANTS <= len(variants) <= MAX_VARIANTS:
        raise InvalidInput(
            f"An experiment has {MIN_VARIANTS} to {MAX_VARIANTS} variants ({len(variants)} given).", field="variants"
        )
    controls = [v for v in variants if v.is_control]
    if len(controls) != 1:
        raise InvalidInput(f"Exactly one variant is the control ({len(controls)} given).", field="variants")
    total = sum(v.weight for v in variants)
    if total != BUCKETS:
        raise InvalidInput(
            f"The weights must sum to {BUCKETS} basis points (100%); they sum to {total}.", field="weights"
        )
    treatments = [v for v in variants if not v.is_control]
    slot = BUCKETS // len(treatments)
    for variant in treatments:
        if variant.weight > slot:
            raise InvalidInput(
                f"Variant '{variant.name}' may have at most {slot} basis points with {len(treatments)} treatments "
                "(each treatment owns a fixed slot of the buckets, so that ramping never moves a unit between "
                "treatments).",
                field="weights",
            )


def _lock(experiment: Experiment) -> Experiment:
    """Lock the model's row, then the experiment's; the experiment as it is now, with its variants."""
    if RegisteredModel.objects.select_for_update().filter(pk=experiment.model_id).first() is None:
        raise NotFound(f"Experiment {experiment.pk} no longer exists: its model was deleted meanwhile.")
    if Experiment.objects.select_for_update().filter(pk=experiment.pk).first() is None:
        raise NotFound(f"Experiment {experiment.pk} no longer exists.")
    return get_experiment(experiment.pk)


def _require_state(experiment: Experiment, allowed: tuple[str, ...], what: str) -> None:
    """A 409 naming `state` unless the experiment is in one of `allowed`; `what` completes "it can …"."""
    if experiment.state not in allowed:
        raise Conflict(
            f"Experiment {experiment.pk} is {experiment.state}; it can {what} only when {' or '.join(allowed)}.",
            field="state",
        )


def _transition(experiment: Experiment, act: str) -> str:
    allowed, to = TRANSITIONS[act]
    _require_state(experiment, allowed, act)
    return to


def _audit(action: str, experiment: Experiment, **changes: Any) -> None:
    audit.record(
        action,
        object_type="experiment",
        object_repr=_describe(experiment),
        model_name=experiment.model.name,
        changes={"experiment": experiment.pk, **changes},
    )


def _describe(experiment: Experiment) -> str:
    return f"{experiment.model.name}:{experiment.name} on {experiment.target.name}"


def _weights(experiment: Experiment) -> dict[str, int]:
    return {v.name: v.weight for v in sorted(experiment.variants.all(), key=lambda v: v.pk)}


@transaction.atomic
def create_experiment(
    *,
    model: RegisteredModel,
    target: str,
    name: str,
    variants: list[VariantSpec],
    acting_user: Caller,
    created_by: str = "",
    metric: str = "conversion",
    metric_kind: str = MetricKind.RATE,
    higher_is_better: bool = True,
    min_samples: int = 100,
    salt: str | None = None,
) -> Experiment:
    """A draft experiment of `model`'s versions on `target`: each variant a version of that model that
    could be deployed there (check_variant_deployable), the weights valid (_check_weights)."""
    named = selectors.get_target(target, field="target")
    values: dict[str, Any] = {
        "name": name,
        "created_by": created_by,
        "metric": metric,
        "metric_kind": metric_kind,
        "higher_is_better": higher_is_better,
        "min_samples": min_samples,
    }
    if salt is not None:
        values["salt"] = salt
    values = clean_fields(Experiment, values)
    if RegisteredModel.objects.select_for_update().filter(pk=model.pk).first() is None:
        raise NotFound(f"Model '{model.name}' no longer exists: it was deleted meanwhile.")
    by_version = {
        v.version: v for v in ModelVersion.objects.filter(model=model, version__in=[s.version for s in variants])
    }
    rows = []
    for index, spec in enumerate(variants):
        version = by_version.get(spec.version)
        if version is None:
            raise InvalidInput(
                f"variants[{index}].version: model '{model.name}' has no version '{spec.version}'.", field="variants"
            )
        check_variant_deployable(version=version, target=named, acting_user=acting_user)
        cleaned = clean_fields(Variant, {"name": spec.name or spec.version, "weight": spec.weight})
        rows.append(Variant(version=version, is_control=spec.is_control, **cleaned))
    _check_weights(rows)
    for field in ("name", "version"):
        seen = [getattr(v, field if field == "name" else "version_id") for v in rows]
        if len(seen) != len(set(seen)):
            raise InvalidInput(f"Two variants have the same {field}.", field="variants")
    experiment = Experiment.objects.create(model=model, target=named, **values)
    for row in rows:
        row.experiment = experiment
    Variant.objects.bulk_create(rows)
    experiment = get_experiment(experiment.pk)
    _audit("create_experiment", experiment, weights=_weights(experiment), metric=metric)
    return experiment


@transaction.atomic
def start_experiment(*, experiment: Experiment, acting_user: Caller) -> Experiment:
    """Start a draft: its variants are judged again (a version may have been archived since), and the
    target must have no other running or paused experiment of the model (the database's partial unique
    index says so too, for two starts at once)."""
    experiment = _lock(experiment)
    to = _transition(experiment, "start")
    for variant in experiment.variants.all():
        check_variant_deployable(version=variant.version, target=experiment.target, acting_user=acting_user)
    other = (
        Experiment.objects.filter(model_id=experiment.model_id, target=experiment.target, state__in=LIVE_STATES)
        .exclude(pk=experiment.pk)
        .first()
    )
    if other is not None:
        raise Conflict(
            f"Experiment {other.pk} ('{other.name}') is {other.state} on target '{experiment.target.name}'; stop "
            "it first: one experiment per model and target at a time.",
            field="state",
        )
    experiment.state, experiment.started_at = to, timezone.now()
    try:
        with transaction.atomic():
            experiment.save(update_fields=["state", "started_at"])
    except IntegrityError:
        raise Conflict(
            f"Another experiment of model '{experiment.model.name}' started on target '{experiment.target.name}' "
            "meanwhile.",
            field="state",
        ) from None
    _audit("start_experiment", experiment, weights=_weights(experiment))
    return experiment


def _move(experiment: Experiment, act: str) -> Experiment:
    experiment = _lock(experiment)
    to = _transition(experiment, act)
    before = experiment.state
    experiment.state = to
    fields = ["state"]
    if to == ExperimentState.STOPPED:
        experiment.stopped_at = timezone.now()
        fields.append("stopped_at")
    experiment.save(update_fields=fields)
    _audit(f"{act}_experiment", experiment, state=[before, to])
    return experiment


@transaction.atomic
def pause_experiment(*, experiment: Experiment) -> Experiment:
    """Pause a running experiment: every unit gets the control's version until it resumes."""
    return _move(experiment, "pause")


@transaction.atomic
def resume_experiment(*, experiment: Experiment) -> Experiment:
    return _move(experiment, "resume")


@transaction.atomic
def stop_experiment(*, experiment: Experiment) -> Experiment:
    """Stop a running or paused experiment without a winner: the target serves its active version again.
    Results may still be reported (late batches), and it may be concluded later."""
    return _move(experiment, "stop")


@transaction.atomic
def set_weights(*, experiment: Experiment, weights: dict[str, int]) -> Experiment:
    """Change the variants' weights (ramp up or down), by variant name; variants not named keep theirs.
    The whole set must be valid afterwards (_check_weights)."""
    experiment = _lock(experiment)
    _require_state(experiment, WEIGHTS_CHANGEABLE, "change weights")
    variants = sorted(experiment.variants.all(), key=lambda v: v.pk)
    by_name = {v.name: v for v in variants}
    unknown = sorted(set(weights) - set(by_name))
    if unknown:
        raise InvalidInput(
            f"No variant named {', '.join(unknown)}; the variants are {', '.join(by_name)}.", field="weights"
        )
    before = _weights(experiment)
    for name, weight in weights.items():
        by_name[name].weight = clean_fields(Variant, {"weight": weight})["weight"]
    _check_weights(variants)
    changed = [v for v in variants if before[v.name] != v.weight]
    Variant.objects.bulk_update(changed, ["weight"])
    after = {v.name: v.weight for v in variants}
    if changed:
        _audit("set_experiment_weights", experiment, weights=audit.diff(before, after))
    return get_experiment(experiment.pk)


def _count(batch: dict[str, Any], field: str, where: str) -> int:
    value = batch.get(field)
    if value is None:
        raise InvalidInput(f"{where}.{field}: required for this experiment's metric.", field="batches")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{where}.{field}: must be a whole number, 0 or more.", field="batches")
    if value > MAX_UNITS_PER_BATCH:
        raise InvalidInput(
            f"{where}.{field}: at most {MAX_UNITS_PER_BATCH:,} in one batch ({value:,} given); report a larger "
            "number in several batches.",
            field="batches",
        )
    return value


def _number(batch: dict[str, Any], field: str, where: str) -> float:
    value = batch.get(field)
    if value is None:
        raise InvalidInput(f"{where}.{field}: required for this experiment's metric.", field="batches")
    try:
        return metric_value(value)
    except ValueError as exc:
        raise InvalidInput(f"{where}.{field}: {exc}.", field="batches") from None


@transaction.atomic
def report_results(*, experiment: Experiment, batches: list[dict[str, Any]]) -> list[ResultBatch]:
    """Record what serving systems observed, batch by batch: {"variant", "exposures", "conversions"} for
    a rate metric, {"variant", "count", "sum", "sum_sq"} for a mean metric, and an optional
    "observed_at". All or nothing: one bad batch refuses the whole report, naming it."""
    experiment = _lock(experiment)
    _require_state(experiment, RESULTS_ACCEPTED, "take results")
    if not 1 <= len(batches) <= MAX_BATCHES:
        raise InvalidInput(f"Give 1 to {MAX_BATCHES} batches ({len(batches)} given).", field="batches")
    by_name = {v.name: v for v in experiment.variants.all()}
    rate = experiment.metric_kind == MetricKind.RATE
    rows = []
    for index, batch in enumerate(batches):
        where = f"batches[{index}]"
        variant = by_name.get(batch.get("variant"))  # type: ignore[arg-type]
        if variant is None:
            raise InvalidInput(
                f"{where}.variant: no variant named {batch.get('variant')!r}; the variants are {', '.join(by_name)}.",
                field="batches",
            )
        kind_fields = {"exposures", "conversions"} if rate else {"count", "sum", "sum_sq"}
        foreign = sorted(set(batch) - kind_fields - {"variant", "observed_at"})
        if foreign:
            raise InvalidInput(
                f"{where}: {', '.join(foreign)} not taken by a {experiment.metric_kind} metric; give "
                f"{', '.join(sorted(kind_fields))}.",
                field="batches",
            )
        row = ResultBatch(variant=variant, observed_at=batch.get("observed_at") or timezone.now())
        if rate:
            row.exposures = _count(batch, "exposures", where)
            row.conversions = _count(batch, "conversions", where)
            if row.conversions > row.exposures:
                raise InvalidInput(
                    f"{where}.conversions: {row.conversions} is more than the {row.exposures} exposures.",
                    field="batches",
                )
        else:
            row.exposures = _count(batch, "count", where)
            row.total = _number(batch, "sum", where)
            row.total_sq = _number(batch, "sum_sq", where)
            # Cauchy-Schwarz: a sum of squares below sum²/count is not one of real values (1e-9: rounding).
            if row.total_sq < 0 or (row.exposures and row.total**2 / row.exposures > row.total_sq * (1 + 1e-9) + 1e-9):
                raise InvalidInput(
                    f"{where}.sum_sq: {row.total_sq} cannot be the sum of squares of {row.exposures} values "
                    f"summing to {row.total}.",
                    field="batches",
                )
            if row.exposures == 0 and (row.total or row.total_sq):
                raise InvalidInput(f"{where}: a count of 0 has a sum and sum_sq of 0.", field="batches")
        rows.append(row)
    created = ResultBatch.objects.bulk_create(rows)
    _audit("report_experiment_results", experiment, batches=len(rows), units=sum(r.exposures for r in rows))
    return created


@transaction.atomic
def conclude_experiment(
    *,
    experiment: Experiment,
    winner: str,
    acting_user: Caller,
    make_default: bool = False,
    deployed_by: str = "",
) -> Experiment:
    """End the experiment with `winner` (a variant's name): its version becomes the target's only active
    version through deploy_version (the deploy rules apply), optionally the model's default; the
    experiment is concluded with the results as they stood and the decision recorded."""
    experiment = _lock(experiment)
    to = _transition(experiment, "conclude")
    by_name = {v.name: v for v in experiment.variants.all()}
    chosen = by_name.get(winner)
    if chosen is None:
        raise InvalidInput(f"No variant named '{winner}'; the variants are {', '.join(by_name)}.", field="winner")
    snapshot = results(experiment)
    deployed = deploy_version(
        version=chosen.version,
        target=experiment.target.name,
        acting_user=acting_user,
        deployed_by=deployed_by,
    )
    if make_default:
        model_services.set_default_version(version=chosen.version)
    now = timezone.now()
    experiment.state = to
    experiment.stopped_at = experiment.stopped_at or now
    experiment.decision = {
        "winner": chosen.name,
        "version": chosen.version.version,
        "deployment": deployed.deployment.pk,
        "made_default": make_default,
        "concluded_at": now.isoformat(),
        "verdict": snapshot["verdict"],
        "results": snapshot,
    }
    experiment.save(update_fields=["state", "stopped_at", "decision"])
    _audit(
        "conclude_experiment",
        experiment,
        winner=chosen.name,
        version=chosen.version.version,
        deployment=deployed.deployment.pk,
        made_default=make_default,
    )
    return experiment


def live_splits(model_id: int, target_names: list[str]) -> dict[str, dict[str, Any]]:
    """The running or paused experiment's split on each of `target_names` that has one, for the model's
    target listing: one query for the page."""
    variants = (
        Variant.objects.filter(
            experiment__model_id=model_id,
            experiment__target__name__in=target_names,
            experiment__state__in=LIVE_STATES,
        )
        .select_related("experiment__target", "version")
        .order_by("id")
    )
    splits: dict[str, dict[str, Any]] = {}
    for variant in variants:
        experiment = variant.experiment
        entry = splits.setdefault(
            experiment.target.name,
            {"id": experiment.pk, "name": experiment.name, "state": experiment.state, "split": []},
        )
        entry["split"].append(
            {
                "variant": variant.name,
                "version": variant.version.version,
                "weight": variant.weight,
                "is_control": variant.is_control,
            }
        )
    return splits
