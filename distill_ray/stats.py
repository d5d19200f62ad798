"""Interval estimates and tests for accuracies, shared by verification, evaluation and report.

    from distill_ray.stats import wilson_interval, paired_counts, mcnemar_exact, paired_difference_interval
    low, high = wilson_interval(403, 500)                   # one accuracy
    b, c, n = paired_counts(verdicts_a, verdicts_b)          # the same items scored twice: {item id: True/False}
    p = mcnemar_exact(b, c)                                  # exact two-sided McNemar test
    d, low, high = paired_difference_interval(a, b, c, d)    # Newcombe's paired interval for p_A - p_B
    mean, low, high = spread([0.9, 0.883, 0.9])              # replicates: mean and between-seed range
    d, low, high = seed_item_bootstrap(seeds_a, seeds_b)     # replicates: [{item id: True/False}, ...] per side

Wilson score intervals for one proportion (well-behaved at 0% and 100%, unlike the normal approximation). For two
models scored on the *same* items (checkpoint vs base, teacher vs teacher, step vs previous step) the paired tools:
the exact McNemar test (binomial test of the discordant pairs against 1/2) and Newcombe's (1998) method 10, the
square-and-add interval built from the two marginal Wilson intervals and the correlation of the paired outcomes (with
Newcombe's correction of the phi estimate, as in Altman et al., "Statistics with Confidence", 2000, and Fagerland,
Lydersen and Laake, "Statistical Analysis of Contingency Tables", 2017, ch. 8). `difference_interval` (Newcombe's
hybrid interval for two *independent* proportions) stays for samples that do not share items.

Replicates (the same training run under several seeds) add a second source of noise: `seed_item_bootstrap` is a
two-level percentile bootstrap for the difference of mean accuracies A - B, resampling each side's seeds (with
replacement, independently: A's and B's seeds are separate trainings) and the items (with replacement, the same
draw on both sides, so the comparison stays paired over items). A side with one replicate (a base model) only has its
items resampled.

Not guaranteed: the intervals are approximate (their coverage is close to, not exactly, 95%); McNemar conditions on the
discordant pairs, so with very few of them it cannot reach small p-values however large the difference. The seed x
item bootstrap is a percentile interval: with 2-3 seeds per side it can only show the seeds it has (a range of three
values is not the population's spread), so it is narrower than the truth when seeds are few; it is random only
through its `rng_seed`, so a report is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Z95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson interval for correct/n, as fractions in [0, 1]; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(c1: int, n1: int, c2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """(p1 - p2, low, high): Newcombe's hybrid score interval for the difference of two independent proportions."""
    p1 = c1 / n1 if n1 else 0.0
    p2 = c2 / n2 if n2 else 0.0
    l1, u1 = wilson_interval(c1, n1, z)
    l2, u2 = wilson_interval(c2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, low, high


def paired_table(a: Mapping[str, bool], b: Mapping[str, bool]) -> tuple[int, int, int, int]:
    """(both right, only A right, only B right, both wrong) over the item ids present in both; others are dropped."""
    both = a.keys() & b.keys()
    n11 = sum(1 for k in both if a[k] and b[k])
    n10 = sum(1 for k in both if a[k] and not b[k])
    n01 = sum(1 for k in both if not a[k] and b[k])
    return n11, n10, n01, len(both) - n11 - n10 - n01


def paired_counts(a: Mapping[str, bool], b: Mapping[str, bool]) -> tuple[int, int, int]:
    """(b, c, n): items only A got right, items only B got right, and items scored by both."""
    n11, n10, n01, n00 = paired_table(a, b)
    return n10, n01, n11 + n10 + n01 + n00


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: twice the smaller binomial tail of b among b + c discordant pairs, at most 1."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    # exact integer arithmetic until the one division, so large tables lose no precision
    return min(1.0, 2 * tail / 2**n)


def paired_difference_interval(n11: int, n10: int, n01: int, n00: int,
                               z: float = Z95) -> tuple[float, float, float]:
    """(p_A - p_B, low, high) for paired outcomes: Newcombe's method 10 (square-and-add of the marginal Wilson
    intervals, corrected for the correlation phi of the paired outcomes). Counts as in `paired_table`."""
    n = n11 + n10 + n01 + n00
    if n == 0:
        return 0.0, -1.0, 1.0
    r1, r2 = n11 + n10, n11 + n01  # A right, B right
    p1, p2 = r1 / n, r2 / n
    l1, u1 = wilson_interval(r1, n, z)
    l2, u2 = wilson_interval(r2, n, z)
    phi = 0.0
    if 0 < r1 < n and 0 < r2 < n:
        cross = n11 * n00 - n10 * n01
        # Newcombe's correction: a positive association is shrunk by n/2 (never below 0), a negative one kept
        numerator = cross - n / 2 if cross > n / 2 else (0.0 if cross >= 0 else cross)
        phi = numerator / math.sqrt(r1 * (n - r1) * r2 * (n - r2))
    d = p1 - p2
    low = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = d + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return d, max(-1.0, low), min(1.0, high)


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, min, max) of replicate values: the between-seed range, not an interval estimate."""
    if not values:
        raise ValueError("spread of no values")
    return sum(values) / len(values), min(values), max(values)


def seed_item_bootstrap(a: Sequence[Mapping[str, bool]], b: Sequence[Mapping[str, bool]], resamples: int = 4000,
                        rng_seed: int = 0, level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean accuracy of A - mean of B, low, high, items): A and B each a list of replicates, one {item: correct}
    per seed. Only items every replicate of both sides scored are used (their count is returned); the point estimate
    is the difference of the mean-over-seeds accuracies on those items, the interval the `level` percentile interval
    of that difference when seeds (per side) and items (shared) are resampled with replacement."""
    import numpy as np

    if not a or not b:
        raise ValueError("each side needs at least one replicate")
    common = set(a[0])
    for replicate in [*a, *b]:
        common &= replicate.keys()
    items = sorted(common)
    if not items:
        return 0.0, -1.0, 1.0, 0
    matrix_a = np.array([[bool(r[i]) for i in items] for r in a], dtype=float)  # seeds x items
    matrix_b = np.array([[bool(r[i]) for i in items] for r in b], dtype=float)
    diff = float(matrix_a.mean() - matrix_b.mean())
    rng = np.random.default_rng(rng_seed)
    n = len(items)

    def weights(size: int) -> np.ndarray:
        # a resample with replacement as counts per index / size: resamples x size, rows summing to 1
        draws = rng.integers(0, size, size=(resamples, size))
        return np.apply_along_axis(np.bincount, 1, draws, minlength=size) / size

    item_w = weights(n)
    seed_a, seed_b = weights(len(a)), weights(len(b))
    # for each resample r: sum_s sum_i seed_w[r, s] * M[s, i] * item_w[r, i]
    boot = (np.einsum("rs,si,ri->r", seed_a, matrix_a, item_w)
            - np.einsum("rs,si,ri->r", seed_b, matrix_b, item_w))
    tail = (1 - level) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    # rounded so a sum that is 0 up to float error does not print as -0.0
    return diff, round(float(low), 12) + 0.0, round(float(high), 12) + 0.0, n
