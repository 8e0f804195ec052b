"""Open-o3 Video's temporal reward r_t over the timestamps the model cites in its reasoning."""
from __future__ import annotations

import math


def sigma_at(progress: float, start: float = 4.0, end: float = 1.0, anneal_fraction: float = 0.75) -> float:
    """σ (seconds) of the adaptive proximity: linear from `start` to `end` over the first
    `anneal_fraction` of training progress (0 = first step, 1 = last), then `end`. Non-finite
    progress counts as 0."""
    progress = progress if math.isfinite(progress) else 0.0
    if anneal_fraction <= 0:
        return end
    done = min(max(progress / anneal_fraction, 0.0), 1.0)
    return start + (end - start) * done


def interval_fraction(times: list[float], intervals: list[tuple[float, float]]) -> float:
    """Fraction of the cited times (seconds) inside any labelled interval (bounds included); 0 for none."""
    if not times or not intervals:
        return 0.0
    inside = sum(any(s <= t <= e for s, e in intervals) for t in times)
    return inside / len(times)


def temporal_proximity(times: list[float], key_times: list[float], sigma: float) -> float:
    """mean_m exp(−Δt_m² / 2σ²), Δt_m = distance from cited time m to the nearest key-frame time."""
    if not times or not key_times or not sigma > 0:
        return 0.0
    total = 0.0
    for t in times:
        nearest = min(abs(t - k) for k in key_times)
        total += math.exp(-(nearest * nearest) / (2.0 * sigma * sigma))
    return total / len(times)
