"""Video-o3's trajectory reward: turn decay and the bonus table, one test per data-type row."""
import pytest

from vo3rl.data.schema import DataType
from vo3rl.rewards.trajectory import BonusTable, trajectory_bonus, turn_decay, video_o3_reward


def test_single_clue_tool_row():
    # k = 3 calls: gamma = 1 - 0.05*2 = 0.9; S_single = 0.6 -> beta = 0.9 * (0.5 + 0.3) = 0.72.
    assert turn_decay(DataType.SINGLE_CLUE_TOOL, 3) == pytest.approx(0.9)
    beta = trajectory_bonus(DataType.SINGLE_CLUE_TOOL, 3, clue_single=0.6, clue_multi=0.0)
    assert beta == pytest.approx(0.72)
    assert video_o3_reward(1.0, 1.0, beta) == pytest.approx(2.72)
    # k = 1: no decay. k = 0: the tool was needed, no bonus.
    assert trajectory_bonus(DataType.SINGLE_CLUE_TOOL, 1, 1.0, 0.0) == pytest.approx(1.0)
    assert trajectory_bonus(DataType.SINGLE_CLUE_TOOL, 0, 1.0, 1.0) == 0.0


def test_multi_clue_tool_row_has_no_decay():
    # beta = 0.5 + 0.5 * S_multi = 0.75 for S_multi = 0.5, whatever k > 0.
    for k in (1, 4, 7):
        assert trajectory_bonus(DataType.MULTI_CLUE_TOOL, k, clue_single=0.9, clue_multi=0.5) == pytest.approx(0.75)
    assert trajectory_bonus(DataType.MULTI_CLUE_TOOL, 0, 0.9, 0.5) == 0.0


def test_single_clue_no_tool_row_prefers_a_direct_answer():
    assert trajectory_bonus(DataType.SINGLE_CLUE_NO_TOOL, 0, 0.0, 0.0) == pytest.approx(0.75)
    # k = 2: gamma = 1 - 2*0.05*2 = 0.8 -> 0.6.
    assert trajectory_bonus(DataType.SINGLE_CLUE_NO_TOOL, 2, 0.0, 0.0) == pytest.approx(0.6)
    # gamma never goes negative: k = 12 would give 1 - 1.2.
    assert turn_decay(DataType.SINGLE_CLUE_NO_TOOL, 12) == 0.0


def test_multi_clue_no_tool_row_is_constant():
    assert [trajectory_bonus(DataType.MULTI_CLUE_NO_TOOL, k, 0.3, 0.3) for k in (0, 1, 5)] == [0.5, 0.5, 0.5]


def test_temporal_grounding_row_has_no_bonus():
    assert trajectory_bonus(DataType.TEMPORAL_GROUNDING, 0, 1.0, 1.0) == 0.0
    # R = tIoU + r_fmt, e.g. tIoU 1/3 with a perfect format.
    assert video_o3_reward(1.0, 1 / 3, 0.0) == pytest.approx(4 / 3)


def test_bonus_needs_perfect_answer_and_format():
    assert video_o3_reward(0.5, 1.0, 0.9) == pytest.approx(1.5)
    assert video_o3_reward(1.0, 0.0, 0.9) == 1.0
    assert video_o3_reward(1.0, 1.0, 0.9, w_bonus=0.0) == 2.0
    assert video_o3_reward(1.0, 1.0, 1.0) == 3.0  # the maximum


def test_table_constants_are_configurable():
    table = BonusTable(decay_lambda=0.1, bonus_base=0.2, clue_weight=0.8)
    # gamma = 1 - 0.1*(2-1) = 0.9; 0.9 * (0.2 + 0.8*0.5) = 0.54.
    assert trajectory_bonus(DataType.SINGLE_CLUE_TOOL, 2, 0.5, 0.0, table) == pytest.approx(0.54)
