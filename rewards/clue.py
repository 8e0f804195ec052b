"""Video-o3's hybrid clue score: how well the segments the agent cropped cover the annotated clues."""
from __future__ import annotations

import math
from dataclasses import dataclass

Interval = tuple[float, float]


def _as_interval(value) -> Interval | None:
    try:
        start, end = (float(v) for v in value)
    except (TypeError, ValueError, OverflowError):
        return None
    return (start, end) if math.isfinite(start) and math.isfinite(end) and end > start else None


def merge_intervals(intervals) -> list[Interval]:
    """Sorted, non-overlapping union of [start, end] intervals (seconds). Touching intervals merge;
    reversed, empty or non-finite ones are dropped."""
    valid = sorted(pair for pair in map(_as_interval, intervals) if pair is not None)
    merged: list[list[float]] = []
    for start, end in valid:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def _total_length(intervals: list[Interval]) -> float:
    return sum(e - s for s, e in intervals)


def _overlap(a: list[Interval], b: list[Interval]) -> float:
    """Total overlap of two merged interval lists, by a two-pointer sweep."""
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        total += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


@dataclass(frozen=True)
class ClueOverlap:
    """Overlap measures of predicted vs ground-truth clue time (all in [0, 1] except diou in [-1, 1])."""

    iou: float = 0.0
    iop: float = 0.0
    iog: float = 0.0
    diou: float = -1.0

    @property
    def single(self) -> float:
        """Single-clue score (IoU + IoP + IoG + (DIoU + 1)/2) / 4."""
        return (self.iou + self.iop + self.iog + (self.diou + 1.0) / 2.0) / 4.0

    @property
    def multi(self) -> float:
        """Multi-clue score (2·IoU + IoP + IoG) / 4."""
        return (2.0 * self.iou + self.iop + self.iog) / 4.0


def clue_overlap(predicted, ground_truth) -> ClueOverlap:
    """Both sides are merged first. With no predicted or no ground-truth time every measure is at its
    minimum (the single and multi scores are then 0).

    DIoU = IoU − (c_p − c_g)² / C²: c_p, c_g are the centres of each side's envelope [first start,
    last end] and C the length of the envelope covering both sides.
    """
    pred, truth = merge_intervals(predicted), merge_intervals(ground_truth)
    p_len, g_len = _total_length(pred), _total_length(truth)
    if p_len <= 0 or g_len <= 0:
        return ClueOverlap()
    inter = _overlap(pred, truth)
    union = p_len + g_len - inter
    iou = inter / union
    c_p = (pred[0][0] + pred[-1][1]) / 2.0
    c_g = (truth[0][0] + truth[-1][1]) / 2.0
    cover = max(pred[-1][1], truth[-1][1]) - min(pred[0][0], truth[0][0])
    diou = iou - ((c_p - c_g) / cover) ** 2
    return ClueOverlap(iou=iou, iop=inter / p_len, iog=inter / g_len, diou=diou)
