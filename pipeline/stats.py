"""Paired statistics for comparing two evaluations of the same samples (pure numpy).

A re-run row differs from the baseline by its per-sample paired differences
``d_i = epe_row_i - epe_baseline_i`` over the samples both evaluated. Two intervals:

* over samples: a percentile bootstrap of mean(d) (`bootstrap_mean_ci`): resample the
  N differences with replacement `BOOTSTRAP_RESAMPLES` times from a fixed seed, take the
  2.5 / 97.5 % quantiles of the resampled means. It measures how much the test set's
  sampling moves the difference, for these trained networks; it says nothing about
  training noise.
* over seeds: with n >= 2 seeds present on both sides, the per-seed mean differences
  (paired by seed) get a Student-t interval (`t_interval`, n - 1 degrees of freedom).
  That is the one that says whether a config beats the baseline beyond seed noise;
  with n = 3 it is wide, as it should be.

An interval "excludes 0" when both ends have the same sign; equal ends at 0 (identical
runs) do not.
"""

from __future__ import annotations

import math

import numpy as np

from hcdg.pipeline.errors import HcdgError

#: Bootstrap resamples of the per-sample interval: 2,000 puts the Monte-Carlo error of
#: the 2.5 / 97.5 % quantiles well under their sampling error (Efron & Tibshirani 1993,
#: ch. 19 recommend >= 1,000 for percentile intervals).
BOOTSTRAP_RESAMPLES = 2000
#: Seed of the bootstrap draws: the same inputs give the same interval.
BOOTSTRAP_SEED = 0
#: Two-sided level of every interval.
CI_LEVEL = 0.95


def bootstrap_mean_ci(
    values: np.ndarray,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = CI_LEVEL,
    chunk: int = 250,
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` (N,) and its percentile-bootstrap interval.

    NaNs are dropped first; no values -> (nan, nan, nan). Memory: `chunk` x N indices at a time.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    if n_resamples < 1 or not 0.0 < level < 1.0:
        raise HcdgError(f"bootstrap: need n_resamples >= 1 and 0 < level < 1, got {n_resamples}, {level}")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        k = min(chunk, n_resamples - start)
        idx = rng.integers(0, x.size, size=(k, x.size))
        means[start : start + k] = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    mean = float(x.mean())
    # the quantiles of a constant are the constant, up to summation rounding
    return mean, float(min(low, mean)), float(max(high, mean))


def t_interval(values: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float, float, float]:
    """(mean, std, low, high) of `values` (n,) with a Student-t interval of the mean.

    std has ddof 1; fewer than 2 finite values -> std, low, high are NaN.
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2.0, x.size - 1)) * sd / math.sqrt(x.size)
    return mean, sd, mean - half, mean + half


def excludes_zero(low: float, high: float) -> bool:
    """True when the interval [low, high] lies strictly on one side of 0."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return False
    return low > 0.0 or high < 0.0


def mean_std(values: list[float] | np.ndarray) -> tuple[float, float, int]:
    """(mean, std with ddof 1 (NaN for n < 2), n) of the finite values."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, 0
    return float(x.mean()), (float(x.std(ddof=1)) if x.size > 1 else math.nan), int(x.size)
