"""Benchmark metrics as the papers report them, pure functions over per-sample scores.

Fractions in, fractions out (reports multiply by 100). Spec: ../shared/spec/methods.md section 8.

- Multiple choice: accuracy per task and MLVU's M-Avg (the mean of the per-task accuracies, so a
  small task counts as much as a large one); VideoMME's short / medium / long split and overall.
- Temporal grounding (Charades-STA): R@IoU for thresholds 0.3 / 0.5 / 0.7 (share of samples whose
  predicted interval reaches the threshold) and mIoU.
- V-STAR: m_vIoU over annotated seconds (a second without a predicted box scores 0), and per chain
  AM = (Acc + tIoU + vIoU) / 3, LGM = -[ln(1 - Acc) + ln(1 - tIoU) + ln(1 - vIoU)] / 3; mAM and mLGM
  are their means over the two chains.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Hashable, Iterable, Mapping, Sequence

from vo3rl.rewards.answer import box_iou

RECALL_THRESHOLDS = (0.3, 0.5, 0.7)
VIDEOMME_DURATIONS = ("short", "medium", "long")


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _fraction(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} = {value!r}: must be a fraction in [0, 1] (not a percentage)")
    return value


def accuracy_by_group(correct: Iterable[float], groups: Iterable[Hashable]) -> dict[Hashable, float]:
    """Mean of `correct` (1.0 / 0.0 per sample) within each group, groups in first-seen order."""
    totals: dict[Hashable, list[float]] = defaultdict(list)
    for value, group in zip(correct, groups, strict=True):
        totals[group].append(float(value))
    return {group: _mean(values) for group, values in totals.items()}


def m_avg(correct: Iterable[float], tasks: Iterable[Hashable]) -> float:
    """MLVU's M-Avg: the unweighted mean of the per-task accuracies."""
    return _mean(list(accuracy_by_group(correct, tasks).values()))


def videomme_split(correct: Iterable[float], durations: Iterable[str]) -> dict[str, float]:
    """VideoMME accuracy per duration category (the file's own "short" / "medium" / "long") and
    "overall" over every sample; a category with no sample is left out."""
    correct, durations = list(correct), list(durations)
    unknown = sorted(set(durations) - set(VIDEOMME_DURATIONS))
    if unknown:
        raise ValueError(f"VideoMME duration {unknown[0]!r}: must be one of {', '.join(VIDEOMME_DURATIONS)}")
    by = accuracy_by_group(correct, durations)
    return {**{d: by[d] for d in VIDEOMME_DURATIONS if d in by}, "overall": _mean(correct)}


def grounding_recall(ious: Iterable[float], thresholds: Sequence[float] = RECALL_THRESHOLDS) -> dict[str, float]:
    """Charades-STA: `R@<t>` = share of samples with IoU >= t, and `mIoU`; a sample without a
    prediction counts with IoU 0."""
    ious = [float(v) for v in ious]
    out = {f"R@{t:g}": _mean([1.0 if iou >= t else 0.0 for iou in ious]) for t in thresholds}
    out["mIoU"] = _mean(ious)
    return out


def m_viou(predicted: Mapping[int, Sequence[float]], annotated: Mapping[int, Sequence[float]]) -> float:
    """Mean over the annotated seconds of the IoU between the box predicted for that second and the
    ground-truth box (boxes (x1, y1, x2, y2) in the same units); a second with no prediction scores 0,
    predictions at unannotated seconds are not counted."""
    return _mean([box_iou(predicted.get(second), box) for second, box in annotated.items()])


def am(acc: float, tiou: float, viou: float) -> float:
    """V-STAR's arithmetic mean of one chain."""
    return (_fraction("acc", acc) + _fraction("tiou", tiou) + _fraction("viou", viou)) / 3


def lgm(acc: float, tiou: float, viou: float) -> float:
    """V-STAR's logarithmic geometric mean of one chain; infinite when a term is 1 (a perfect score)."""
    terms = [_fraction("acc", acc), _fraction("tiou", tiou), _fraction("viou", viou)]
    if any(t == 1.0 for t in terms):
        return math.inf
    return -sum(math.log(1.0 - t) for t in terms) / 3


def mam_mlgm(acc: float, tiou_chain1: float, tiou_chain2: float, viou_chain1: float,
             viou_chain2: float) -> tuple[float, float]:
    """(mAM, mLGM) of V-STAR from the judged accuracy and each chain's m_tIoU and m_vIoU."""
    mam = (am(acc, tiou_chain1, viou_chain1) + am(acc, tiou_chain2, viou_chain2)) / 2
    mlgm = (lgm(acc, tiou_chain1, viou_chain1) + lgm(acc, tiou_chain2, viou_chain2)) / 2
    return mam, mlgm
