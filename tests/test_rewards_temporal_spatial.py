"""Open-o3 Video's temporal reward (interval fraction, adaptive proximity, σ schedule) and spatial
reward with temporal gating."""
import math

import pytest

from vo3rl.agent.parse import Claim
from vo3rl.data.schema import KeyFrame
from vo3rl.rewards.spatial import spatial_reward
from vo3rl.rewards.temporal import interval_fraction, sigma_at, temporal_proximity


def test_sigma_schedule_ends_and_middle():
    assert sigma_at(0.0) == 4.0
    assert sigma_at(0.375) == pytest.approx(2.5)  # halfway through the annealing
    assert sigma_at(0.75) == 1.0
    assert sigma_at(1.0) == 1.0
    assert sigma_at(-0.2) == 4.0 and sigma_at(float("nan")) == 4.0 and sigma_at(5.0) == 1.0


def test_interval_fraction_counts_bounds_as_inside():
    assert interval_fraction([1, 5, 9, 10], [(5, 10)]) == 0.75
    assert interval_fraction([1, 12], [(0, 2), (11, 13)]) == 1.0
    assert interval_fraction([], [(0, 1)]) == 0.0 and interval_fraction([1], []) == 0.0


def test_adaptive_proximity_by_hand():
    # times 10 and 12, key frame at 10, sigma 2: exp(0) and exp(-4/8) -> mean (1 + e^-0.5)/2.
    assert temporal_proximity([10, 12], [10], 2.0) == pytest.approx((1 + math.exp(-0.5)) / 2)
    # The nearest key frame counts: 12 is 1 s from 13.
    assert temporal_proximity([12], [3, 13], 1.0) == pytest.approx(math.exp(-0.5))
    assert temporal_proximity([], [1], 1.0) == 0.0 and temporal_proximity([1], [], 1.0) == 0.0


KEY_FRAMES = [KeyFrame(10.0, {"cup": [(0.1, 0.1, 0.5, 0.5)]}), KeyFrame(30.0, {"dog": [(0.5, 0.5, 1.0, 1.0)]})]
FRAME = (200, 100)  # width, height in pixels
CUP_PX = (20.0, 10.0, 100.0, 50.0)  # = the cup's normalised box on a 200x100 frame


@pytest.mark.parametrize("time_s, expected", [
    (10.0, 1.0),
    (13.0, 1.0),  # |dt| == tau: inside
    (7.0, 1.0),  # absolute test: 3 s before also counts
    (13.01, 0.0),
    (6.99, 0.0),
])
def test_gating_threshold_edges(time_s, expected):
    assert spatial_reward([Claim("cup", (CUP_PX,), time_s)], KEY_FRAMES, FRAME, tau_s=3.0) == pytest.approx(expected)


def test_best_box_of_the_nearest_frame_and_the_mean_over_claims():
    half = (20.0, 10.0, 60.0, 50.0)  # half of the cup's box: IoU 0.5
    claims = [
        Claim("cup", (half, CUP_PX), 10.5),  # best of two boxes: 1.0
        Claim("dog", ((100.0, 50.0, 200.0, 100.0),), 29.0),  # nearest frame is 30 s: IoU 1.0
        Claim("cup", (CUP_PX,), 20.0),  # nearest frame 10 s or 30 s, 10 s away: gated out
        Claim("cup", (), 10.0),  # no valid box: 0
        Claim("cup", (CUP_PX,), None),  # no time: 0
    ]
    assert spatial_reward(claims, KEY_FRAMES, FRAME, tau_s=3.0) == pytest.approx(2 / 5)
    assert spatial_reward(claims[:1], KEY_FRAMES, FRAME, tau_s=1.0) == 1.0
    assert spatial_reward([], KEY_FRAMES, FRAME) == 0.0 and spatial_reward(claims, [], FRAME) == 0.0
