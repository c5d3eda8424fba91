"""Small statistics shared by reports: the Wilson score interval of a proportion."""

from __future__ import annotations

import math


def wilson_interval(hits: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of ``hits`` successes in ``n`` trials (default: 95%), as
    ``(low, high)`` proportions in ``[0, 1]``; ``(0.0, 1.0)`` when ``n`` is 0 (nothing is known)."""
    if isinstance(hits, bool) or isinstance(n, bool) or not 0 <= hits <= n:
        raise ValueError(f"wilson_interval: expected 0 <= hits <= n, got hits={hits!r}, n={n!r}")
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at 0 or n hits one end is exactly p (rounding would put it a hair inside)
    low = 0.0 if hits == 0 else max(0.0, centre - half)
    high = 1.0 if hits == n else min(1.0, centre + half)
    return low, high
