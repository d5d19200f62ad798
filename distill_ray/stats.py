"""Interval estimates for accuracies and differences of accuracies, shared by verification, evaluation and report.

Wilson score intervals for one proportion (well-behaved at 0% and 100%, unlike the normal approximation), and a
Newcombe hybrid interval for the difference of two independent proportions, used by the report to say whether two
checkpoints differ by more than noise. Both assume independent items; paired designs (the same items scored twice)
get a conservative answer from the unpaired interval.
"""

from __future__ import annotations

import math

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
    """(p1 - p2, low, high): Newcombe's hybrid score interval for the difference of two proportions."""
    p1 = c1 / n1 if n1 else 0.0
    p2 = c2 / n2 if n2 else 0.0
    l1, u1 = wilson_interval(c1, n1, z)
    l2, u2 = wilson_interval(c2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, low, high
