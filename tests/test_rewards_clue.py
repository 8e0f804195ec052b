"""Video-o3's hybrid clue score: interval merging, IoU/IoP/IoG/DIoU, single and multi forms."""
import pytest

from vo3rl.rewards.clue import clue_overlap, merge_intervals


def test_merging_sorts_joins_touching_and_drops_bad_intervals():
    raw = [(5, 8), (1, 3), (2, 4), (8, 9), (7, 6), (3, 3), (float("nan"), 2), ("x", 1), (20, 21)]
    assert merge_intervals(raw) == [(1.0, 4.0), (5.0, 9.0), (20.0, 21.0)]
    assert merge_intervals([]) == []


def test_perfect_cover():
    overlap = clue_overlap([(10, 20)], [(10, 20)])
    assert (overlap.iou, overlap.iop, overlap.iog, overlap.diou) == (1.0, 1.0, 1.0, 1.0)
    assert overlap.single == 1.0 and overlap.multi == 1.0


def test_containing_prediction():
    # pred [8, 22] vs gt [10, 20]: I = 10, P = 14, G = 10, U = 14; same centres so DIoU = IoU.
    o = clue_overlap([(8, 22)], [(10, 20)])
    assert (o.iou, o.iop, o.iog, o.diou) == pytest.approx((10 / 14, 10 / 14, 1.0, 10 / 14))
    assert o.single == pytest.approx((10 / 14 + 10 / 14 + 1 + (10 / 14 + 1) / 2) / 4)
    assert o.multi == pytest.approx((2 * 10 / 14 + 10 / 14 + 1) / 4)


def test_diou_term_for_disjoint_segments():
    # pred [0, 2], gt [4, 6]: IoU 0; centres 1 and 5, covering envelope [0, 6] -> DIoU = -(4/6)^2 = -4/9.
    o = clue_overlap([(0, 2)], [(4, 6)])
    assert o.diou == pytest.approx(-4 / 9)
    assert o.single == pytest.approx(((1 - 4 / 9) / 2) / 4)  # = 5/72
    assert o.multi == 0.0


def test_multi_interval_sides_use_envelopes_and_totals():
    # pred [0,4]+[6,10], gt [2,8]: I = 2 + 2 = 4, P = 8, G = 6, U = 10.
    # Envelopes [0,10] and [2,8] share the centre 5, C = 10 -> DIoU = IoU = 0.4.
    o = clue_overlap([(6, 10), (0, 4)], [(2, 8)])
    assert (o.iou, o.iop, o.iog, o.diou) == pytest.approx((0.4, 0.5, 2 / 3, 0.4))
    assert o.single == pytest.approx(17 / 30)
    assert o.multi == pytest.approx(59 / 120)


def test_overlapping_predictions_are_merged_before_measuring():
    # Two overlapping crops [0,6] and [4,10] are one predicted interval [0,10]; gt [0,10].
    assert clue_overlap([(0, 6), (4, 10)], [(0, 10)]).iou == 1.0


def test_nothing_predicted_or_nothing_annotated_scores_zero():
    for pred, truth in (([], [(1, 2)]), ([(1, 2)], []), ([(3, 1)], [(1, 2)])):
        o = clue_overlap(pred, truth)
        assert o.single == 0.0 and o.multi == 0.0
