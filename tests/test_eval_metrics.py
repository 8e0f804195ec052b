"""Benchmark metrics on hand-computed cases: MLVU M-Avg, VideoMME split, Charades-STA R@IoU and
mIoU, V-STAR m_vIoU, AM / LGM / mAM / mLGM; and the test-time-scaling votes."""
import math

import pytest

from vo3rl.evaluation import mam_mlgm
from vo3rl.evaluation.metrics import (
    accuracy_by_group, grounding_recall, lgm, m_avg, m_viou, videomme_split)
from vo3rl.evaluation.voting import confidence_weight, parse_rating, vote


def test_m_avg_weighs_tasks_equally():
    # Task a: 3 of 4 right; task b: 0 of 1. Per sample 3/5 = 0.6; M-Avg (0.75 + 0) / 2 = 0.375.
    correct, tasks = [1, 1, 1, 0, 0], ["a", "a", "a", "a", "b"]
    assert accuracy_by_group(correct, tasks) == {"a": 0.75, "b": 0.0}
    assert m_avg(correct, tasks) == 0.375


def test_videomme_split_and_overall():
    split = videomme_split([1, 0, 1, 1, 0], ["short", "short", "medium", "long", "long"])
    assert split == {"short": 0.5, "medium": 1.0, "long": 0.5, "overall": 0.6}
    with pytest.raises(ValueError, match="'extra-long': must be one of short, medium, long"):
        videomme_split([1], ["extra-long"])


def test_grounding_recall_at_iou_thresholds():
    # IoUs 0.8, 0.5, 0.35, 0.1 and a missing prediction (0): R@0.3 = 3/5, R@0.5 = 2/5 (0.5 counts),
    # R@0.7 = 1/5, mIoU = 1.75 / 5 = 0.35.
    out = grounding_recall([0.8, 0.5, 0.35, 0.1, 0.0])
    assert out == pytest.approx({"R@0.3": 0.6, "R@0.5": 0.4, "R@0.7": 0.2, "mIoU": 0.35})


def test_m_viou_counts_missing_seconds_as_zero_and_ignores_unannotated_ones():
    annotated = {3: (0, 0, 10, 10), 4: (0, 0, 10, 10)}
    predicted = {3: (0, 0, 10, 5), 9: (0, 0, 10, 10)}  # second 3: IoU 0.5; 4: missing; 9: not annotated
    assert m_viou(predicted, annotated) == pytest.approx(0.25)


def test_mam_mlgm_by_hand():
    # Chain 1: (0.5 + 0.3 + 0.2)/3 = 1/3; chain 2: (0.5 + 0.4 + 0.1)/3 = 1/3 -> mAM 1/3.
    # LGM_1 = -(ln .5 + ln .7 + ln .8)/3, LGM_2 = -(ln .5 + ln .6 + ln .9)/3.
    mam, mlgm = mam_mlgm(0.5, 0.3, 0.4, 0.2, 0.1)
    lgm1 = -(math.log(0.5) + math.log(0.7) + math.log(0.8)) / 3
    lgm2 = -(math.log(0.5) + math.log(0.6) + math.log(0.9)) / 3
    assert mam == pytest.approx(1 / 3) and mlgm == pytest.approx((lgm1 + lgm2) / 2)
    assert mlgm == pytest.approx(0.4304, abs=1e-4)  # (0.4243 + 0.4364) / 2


def test_mam_mlgm_edges_and_percentages():
    assert mam_mlgm(0, 0, 0, 0, 0) == (0.0, 0.0)
    assert lgm(1.0, 0.2, 0.2) == math.inf  # a perfect term: ln(0)
    with pytest.raises(ValueError, match="acc = 33.7: must be a fraction"):
        mam_mlgm(33.7, 0.1, 0.1, 0.1, 0.1)


@pytest.mark.parametrize("reply, rating", [("2", 2), ("Relevance: 1.", 1), ("0", 0), ("7", None), ("none", None),
                                           (b"\xff2", 2), (None, None)])
def test_parse_rating(reply, rating):
    assert parse_rating(reply) == rating


@pytest.mark.parametrize("rating, crops, weight", [(2, 3, 1.0), (1, 1, 0.6), (0, 2, 0.2), (None, 2, 0.2),
                                                   (2, 0, 0.2), (2, 10, 1.0), (2, 11, 0.2)])
def test_confidence_weights(rating, crops, weight):
    assert confidence_weight(rating, crops) == weight


def test_weighted_and_majority_votes_differ_where_the_paper_says_they_can():
    answers = ["A", "A", "A", "B", "B", None]
    # Majority: A has 3 votes. Weighted: A's evidence rated 0 (0.2 each = 0.6), B's rated 2 (2.0).
    assert vote(answers) == "A"
    assert vote(answers, [0.2, 0.2, 0.2, 1.0, 1.0, 1.0]) == "B"
    assert vote(["C", "D"], [0.6, 0.6]) == "C"  # a tie goes to the answer sampled first
    assert vote([None, None]) is None
    with pytest.raises(ValueError, match="2 answers but 1 weights"):
        vote(["A", "B"], [1.0])
