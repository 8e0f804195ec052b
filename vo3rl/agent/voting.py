"""Open-o3 Video's confidence-aware test-time scaling, the pure part: turning the model's relevance
ratings of each sampled answer's evidence crops into weights, and the weighted vote.

N answers are sampled at temperature 1; for each, every claimed box is cropped from the frame at its
timestamp and the same model rates the crops' relevance to the question 0 / 1 / 2. A rating weighs
1.0 / 0.6 / 0.2; an unreadable rating, no valid crop, or more than `MAX_CROPS` crops weigh 0.2. The
answer is the option with the largest summed weight. Majority voting is the same vote with every
weight 1. Spec: ../shared/spec/methods.md section 8.
"""
from __future__ import annotations

import re
from typing import Sequence

from vo3rl.agent.parse import as_text

RATING_WEIGHTS = {2: 1.0, 1: 0.6, 0: 0.2}
FALLBACK_WEIGHT = 0.2  # unreadable rating, no valid crop, or too many crops
MAX_CROPS = 10
_RATING = re.compile(r"[0-9]")


def parse_rating(reply: str | bytes | None) -> int | None:
    """The first digit of the model's relevance reply when it is 0, 1 or 2, else None."""
    match = _RATING.search(as_text(reply)[:200])
    if match is None or int(match.group(0)) not in RATING_WEIGHTS:
        return None
    return int(match.group(0))


def confidence_weight(rating: int | None, crops: int) -> float:
    """The weight of one sampled answer whose `crops` valid evidence crops were rated `rating`."""
    if crops < 1 or crops > MAX_CROPS or rating not in RATING_WEIGHTS:
        return FALLBACK_WEIGHT
    return RATING_WEIGHTS[rating]


def vote(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> str | None:
    """The answer with the largest summed weight (`weights` None: majority voting). Unparsed
    answers (None) cast no vote; a tie goes to the tied answer sampled first; None when nobody voted."""
    weights = [1.0] * len(answers) if weights is None else list(weights)
    if len(weights) != len(answers):
        raise ValueError(f"vote: {len(answers)} answers but {len(weights)} weights")
    totals: dict[str, float] = {}
    for answer, weight in zip(answers, weights):
        if answer is not None:
            totals[answer] = totals.get(answer, 0.0) + float(weight)
    if not totals:
        return None
    best = max(totals.values())
    return next(answer for answer in totals if totals[answer] == best)  # dicts keep first-seen order
