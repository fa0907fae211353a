"""Paired significance tests and multiple-comparison correction for ``rankexp compare``.

Everything here is a pure function of per-query (or per-seed) score vectors; there is no I/O and
no global state. Two runs are compared on the *same* queries, so every test is paired: it works
on the per-query differences ``d = a - b``.

Tests
    * :func:`paired_ttest`: Student's paired t-test (``scipy.stats.ttest_rel``).
    * :func:`wilcoxon`: Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, ``zero_method="wilcox"``).
    * :func:`randomization_test`: the paired sign-flip permutation test on the mean difference
      (Fisher's randomization test, as recommended for IR by Smucker, Allan & Carterette,
      "A Comparison of Statistical Significance Tests for Information Retrieval Evaluation",
      CIKM 2007). p = (#{|mean of sign-flipped d| >= |mean d|} + 1) / (n_samples + 1).

Correction (:func:`correct`)
    * Holm, "A simple sequentially rejective multiple test procedure" (Scand. J. Statist. 1979):
      step-down adjusted p-values.
    * Bonferroni.
    * Benjamini & Hochberg, "Controlling the false discovery rate" (JRSS B 1995): step-up
      adjusted p-values (q-values in the BH sense).

All tests are two-sided.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "TestResult",
    "summarize",
    "paired_ttest",
    "wilcoxon",
    "randomization_test",
    "correct",
    "CORRECTIONS",
    "TESTS",
]

CORRECTIONS = ("holm", "bonferroni", "bh", "none")

# Sign-flip matrices are drawn in chunks of at most this many cells, so memory stays bounded
# (8 MiB of float64) for any number of queries and samples.
_CHUNK_CELLS = 1 << 20


@dataclass(frozen=True)
class TestResult:
    """The outcome of one paired two-sided test of ``a`` against ``b``.

    ``statistic`` is the test's own statistic (t for the t-test, the signed-rank statistic
    reported by scipy for Wilcoxon, the observed mean difference for the randomization test);
    ``mean_diff`` is always ``mean(a - b)``, so a positive value means ``a`` scored higher.
    """

    __test__ = False  # not a pytest test class, despite the name

    test: str
    statistic: float
    p_value: float
    mean_diff: float
    n: int


def summarize(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation and 95% Student-t confidence interval of ``values``.

    Returns ``{"n", "mean", "std", "ci95_low", "ci95_high"}``. ``std`` uses ddof=1 and is 0.0
    for a single value; the interval is ``mean ± t_{0.975, n-1} · std / sqrt(n)`` and collapses
    to the mean when n == 1.
    """
    x = _as_vector(values, "values")
    n = int(x.size)
    if n == 0:
        raise ValueError("summarize needs at least one value, got an empty sequence")
    mean = float(x.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "std": 0.0, "ci95_low": mean, "ci95_high": mean}
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half}


def paired_ttest(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Two-sided paired t-test of H0: mean(a - b) == 0 (``scipy.stats.ttest_rel``).

    Degenerate case (every difference equal, so the standard error is 0): when all differences
    are 0 the result is t = 0, p = 1; otherwise t = ±inf, p = 0 (the limit of the test).
    """
    x, y = paired_vectors(a, b)
    d = x - y
    n = int(d.size)
    mean_diff = float(d.mean())
    if np.all(d == d[0]):
        if d[0] == 0:
            return TestResult("ttest", 0.0, 1.0, 0.0, n)
        return TestResult("ttest", math.copysign(math.inf, mean_diff), 0.0, mean_diff, n)
    res = stats.ttest_rel(x, y, alternative="two-sided")
    return TestResult("ttest", float(res.statistic), float(res.pvalue), mean_diff, n)


def wilcoxon(a: Sequence[float], b: Sequence[float], method: str = "auto") -> TestResult:
    """Two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, ``zero_method="wilcox"``).

    Zero differences are dropped (Wilcoxon's convention). When every difference is zero the
    test is undefined; this returns statistic 0, p = 1 instead of raising. ``method`` is passed
    to scipy: with ``"auto"`` scipy computes an exact p-value for up to 50 pairs, which for
    9-13 pairs with tied or zero differences is a full permutation test taking seconds;
    ``"asymptotic"`` (normal approximation) is instant.
    """
    x, y = paired_vectors(a, b)
    d = x - y
    n = int(d.size)
    mean_diff = float(d.mean())
    if np.all(d == 0):
        return TestResult("wilcoxon", 0.0, 1.0, 0.0, n)
    res = stats.wilcoxon(x, y, zero_method="wilcox", alternative="two-sided", method=method)
    return TestResult("wilcoxon", float(res.statistic), float(res.pvalue), mean_diff, n)


def randomization_test(
    a: Sequence[float], b: Sequence[float], n_samples: int = 10000, seed: int = 0
) -> TestResult:
    """Two-sided paired randomization (sign-flip permutation) test on the mean difference.

    Under H0 the label of each pair is exchangeable, so each difference ``d_i`` is equally
    likely to have either sign. ``n_samples`` sign vectors are drawn from
    ``numpy.random.default_rng(seed)``; the p-value is
    ``(#{k : |mean(s_k · d)| >= |mean(d)|} + 1) / (n_samples + 1)`` (the observed assignment
    counts as one sample, so p > 0). The same ``(a, b, n_samples, seed)`` always gives the
    same p-value. ``statistic`` is the observed mean difference.
    """
    x, y = paired_vectors(a, b)
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"randomization_test needs n_samples >= 1, got {n_samples!r}")
    d = x - y
    n = int(d.size)
    observed = float(d.mean())
    extreme = _count_extreme_sign_flips(d, int(n_samples), np.random.default_rng(seed))
    p_value = (extreme + 1) / (int(n_samples) + 1)
    return TestResult("randomization", observed, float(p_value), observed, n)


def _count_extreme_sign_flips(d: np.ndarray, n_samples: int, rng: np.random.Generator) -> int:
    """How many of ``n_samples`` random sign flips of ``d`` have |mean| >= |mean(d)|."""
    n = d.size
    observed = abs(float(d.mean()))
    # A permuted mean that equals the observed one mathematically may differ in the last bits.
    threshold = observed - 1e-9 * observed
    rows_per_chunk = max(1, _CHUNK_CELLS // n)
    extreme = 0
    done = 0
    while done < n_samples:
        rows = min(rows_per_chunk, n_samples - done)
        # Uniform floats (not small integers) so the stream does not depend on the chunking.
        signs = np.where(rng.random((rows, n)) < 0.5, -1.0, 1.0)
        permuted = np.abs(signs @ d) / n
        extreme += int(np.count_nonzero(permuted >= threshold))
        done += rows
    return extreme


def correct(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Adjust ``p_values`` for multiple comparisons; returns adjusted p-values in input order.

    * ``"holm"``: Holm's step-down. With p sorted ascending p_(1) <= ... <= p_(m),
      adj_(i) = max_{j <= i} min(1, (m - j + 1) · p_(j)).
    * ``"bonferroni"``: min(1, m · p).
    * ``"bh"``: Benjamini–Hochberg step-up. adj_(i) = min_{j >= i} min(1, m / j · p_(j)).
    * ``"none"``: the p-values unchanged.

    Compare the adjusted values with alpha directly (reject when adj <= alpha).
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction method {method!r}; expected one of {', '.join(CORRECTIONS)}")
    p = _as_vector(p_values, "p_values")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    m = p.size
    if m == 0 or method == "none":
        return p.tolist()
    if method == "bonferroni":
        return np.minimum(1.0, m * p).tolist()
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    ranks = np.arange(1, m + 1)
    if method == "holm":
        adjusted_sorted = np.maximum.accumulate(np.minimum(1.0, (m - ranks + 1) * ranked))
    else:  # bh
        adjusted_sorted = np.minimum.accumulate(np.minimum(1.0, m / ranks * ranked)[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted.tolist()


def _as_vector(values: Sequence[float], name: str) -> np.ndarray:
    """``values`` as a 1-d float array of finite numbers, or a ValueError naming ``name``."""
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of numbers: {exc}") from None
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite numbers (no NaN/inf), got {x.tolist()}")
    return x


def paired_vectors(a: Sequence[float], b: Sequence[float], what: str = "a paired test") -> tuple[np.ndarray, np.ndarray]:
    """Validate two paired score lists (one score per query or per item): 1-d, finite, equal
    length, at least 2 pairs. ``what`` names the caller in the error ("a rank correlation")."""
    x = _as_vector(a, "a")
    y = _as_vector(b, "b")
    if x.size != y.size:
        raise ValueError(f"{what} needs two score lists of equal length (one score per query or item), got {x.size} and {y.size}")
    if x.size < 2:
        raise ValueError(f"{what} needs at least 2 paired scores, got {x.size}")
    return x, y


TESTS: dict[str, Callable[..., TestResult]] = {
    "ttest": paired_ttest,
    "wilcoxon": wilcoxon,
    "randomization": randomization_test,
}
