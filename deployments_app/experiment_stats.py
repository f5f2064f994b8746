"""The statistics of an A/B test's results, with the standard library only (the server carries no
numerical stack): normal intervals and the two-proportion z-test for rate metrics, Student's t intervals
and Welch's t-test for mean metrics, and a chi-square test of the exposures against the weights (the
sample-ratio-mismatch check). The t and chi-square distributions come from the regularized incomplete
beta and gamma functions (Numerical Recipes, 3rd ed., §6.2 and §6.4); tests/test_experiment_stats.py
checks every figure against scipy.stats on known data sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
# Below this p-value, the exposures do not follow the weights: the split itself is broken, and no other
# figure can be trusted (a strict threshold, as sample-ratio checks use: it must not cry wolf).
SRM_ALPHA = 0.001
_EPS = 1e-15
_TINY = 1e-300
_ITERATIONS = 500
_Z = NormalDist()


# --- Distributions ---------------------------------------------------------------------------------
def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function, by the modified Lentz method."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _ITERATIONS + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    # The fraction converges fast on this side of the mean; the other side by symmetry.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom (df may be fractional, as Welch's is)."""
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_ppf(p: float, df: float) -> float:
    """The quantile of Student's t: the t with P(T <= t) = p, by bisection on t_sf (to 1e-12)."""
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_ppf(1.0 - p, df)
    low, high = 0.0, 1.0
    while 1.0 - t_sf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if 1.0 - t_sf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12:
            break
    return (low + high) / 2.0


def _gamma_series(a: float, x: float) -> float:
    term = total = 1.0 / a
    ap = a
    for _ in range(_ITERATIONS):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_continued_fraction(a: float, x: float) -> float:
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _ITERATIONS + 1):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for the chi-square distribution: Q(df/2, x/2), the upper regularized gamma function."""
    if x <= 0.0:
        return 1.0
    a, half = df / 2.0, x / 2.0
    if half < a + 1.0:
        return 1.0 - _gamma_series(a, half)
    return _gamma_continued_fraction(a, half)


def normal_sf(z: float) -> float:
    return _Z.cdf(-z)


# --- Estimates and tests ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Comparison:
    """A treatment against the control: the difference of the estimates (treatment - control) with its
    interval, the relative lift (difference / control, null when the control's estimate is 0) and the
    test's p-value."""

    difference: Estimate
    relative_lift: float | None
    p_value: float
    statistic: float


def _z_critical(confidence: float = CONFIDENCE) -> float:
    return _Z.inv_cdf(0.5 + confidence / 2.0)


def rate_estimate(conversions: int, exposures: int) -> Estimate:
    """The conversion rate with its normal (Wald) interval, clipped to [0, 1]."""
    rate = conversions / exposures
    half = _z_critical() * math.sqrt(rate * (1.0 - rate) / exposures)
    return Estimate(rate, max(0.0, rate - half), min(1.0, rate + half))


def two_proportion_test(c_control: int, n_control: int, c_treatment: int, n_treatment: int) -> Comparison:
    """The pooled two-proportion z-test (two-sided; the same p-value as a 2x2 chi-square without
    continuity correction), and the unpooled normal interval of the difference of the rates."""
    p_c, p_t = c_control / n_control, c_treatment / n_treatment
    pooled = (c_control + c_treatment) / (n_control + n_treatment)
    pooled_se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_control + 1.0 / n_treatment))
    difference = p_t - p_c
    if pooled_se == 0.0:  # no conversion at all, or only conversions: nothing distinguishes them
        z, p_value = 0.0, 1.0
    else:
        z = difference / pooled_se
        p_value = min(1.0, 2.0 * normal_sf(abs(z)))
    se = math.sqrt(p_c * (1.0 - p_c) / n_control + p_t * (1.0 - p_t) / n_treatment)
    half = _z_critical() * se
    lift = difference / p_c if p_c else None
    return Comparison(Estimate(difference, difference - half, difference + half), lift, p_value, z)


@dataclass(frozen=True)
class Sample:
    """A mean metric's sufficient statistics: count, sum and sum of squares."""

    count: int
    total: float
    total_sq: float

    @property
    def mean(self) -> float:
        return self.total / self.count

    @property
    def variance(self) -> float:
        """The sample variance (n - 1 in the denominator); never negative from rounding."""
        if self.count < 2:
            return 0.0
        return max(0.0, (self.total_sq - self.total * self.total / self.count) / (self.count - 1))


def mean_estimate(sample: Sample) -> Estimate:
    """The mean with its Student's t interval (n - 1 degrees of freedom)."""
    mean = sample.mean
    if sample.count < 2:
        return Estimate(mean, mean, mean)
    half = t_ppf(0.5 + CONFIDENCE / 2.0, sample.count - 1) * math.sqrt(sample.variance / sample.count)
    return Estimate(mean, mean - half, mean + half)


def welch_test(control: Sample, treatment: Sample) -> Comparison:
    """Welch's unequal-variances t-test (two-sided) of treatment against control, with the
    Welch-Satterthwaite degrees of freedom, and the difference of the means with its t interval."""
    v_c, v_t = control.variance / control.count, treatment.variance / treatment.count
    difference = treatment.mean - control.mean
    lift = difference / control.mean if control.mean else None
    se = math.sqrt(v_c + v_t)
    if se == 0.0 or control.count < 2 or treatment.count < 2:
        return Comparison(Estimate(difference, difference, difference), lift, 1.0, 0.0)
    df = (v_c + v_t) ** 2 / (v_c**2 / (control.count - 1) + v_t**2 / (treatment.count - 1))
    t = difference / se
    p_value = min(1.0, 2.0 * t_sf(abs(t), df))
    half = t_ppf(0.5 + CONFIDENCE / 2.0, df) * se
    return Comparison(Estimate(difference, difference - half, difference + half), lift, p_value, t)


@dataclass(frozen=True)
class RatioCheck:
    chi_square: float
    p_value: float
    mismatch: bool


def sample_ratio_check(exposures: list[int], weights: list[int]) -> RatioCheck:
    """Pearson's chi-square of the exposures against the split the weights ask for (variants of weight 0
    left out; degrees of freedom: their number less one). A p-value below SRM_ALPHA flags the split as
    broken."""
    pairs = [(n, w) for n, w in zip(exposures, weights, strict=True) if w > 0]
    total, weight_sum = sum(n for n, _ in pairs), sum(w for _, w in pairs)
    if len(pairs) < 2 or total == 0:
        return RatioCheck(0.0, 1.0, False)
    chi_square = sum((n - total * w / weight_sum) ** 2 / (total * w / weight_sum) for n, w in pairs)
    p_value = chi2_sf(chi_square, len(pairs) - 1)
    return RatioCheck(chi_square, p_value, p_value < SRM_ALPHA)
