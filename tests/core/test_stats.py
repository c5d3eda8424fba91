"""The Wilson interval against the score test it inverts, found by bisection."""

from __future__ import annotations

import math

import pytest

from circuits.core.stats import wilson_interval

Z = 1.959963984540054


def _score_bound(hits: int, n: int, upper: bool) -> float:
    """The p where the score statistic |hits/n - p| / sqrt(p (1 - p) / n) reaches Z, by bisection on the
    side of hits/n asked for (the slow definition of the interval's end)."""
    p_hat = hits / n
    lo, hi = (p_hat, 1.0) if upper else (0.0, p_hat)
    if (upper and hits == n) or (not upper and hits == 0):
        return p_hat
    for _ in range(200):
        mid = (lo + hi) / 2
        inside = abs(p_hat - mid) / math.sqrt(mid * (1 - mid) / n) < Z
        if inside == upper:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@pytest.mark.parametrize("hits, n", [(0, 10), (5, 10), (10, 10), (1, 3), (731, 806), (37, 41)])
def test_wilson_interval_inverts_the_score_test(hits, n):
    low, high = wilson_interval(hits, n)
    assert low == pytest.approx(_score_bound(hits, n, upper=False), abs=1e-9)
    assert high == pytest.approx(_score_bound(hits, n, upper=True), abs=1e-9)
    assert low <= hits / n <= high


def test_wilson_interval_known_values_and_bad_input():
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)  # the textbook example
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="0 <= hits <= n"):
        wilson_interval(11, 10)
