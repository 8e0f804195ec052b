"""Video-o3's verifiable trajectory-guided reward: R = r_fmt + r_acc·(1 + β), β = γ·(b0 + w_g·S).

β rewards *how* a correct answer was reached: looking where the clues are (S, the clue score) without
wasting turns (γ, the decay in the number k of tool calls). Its form depends on the sample's data type.
"""
from __future__ import annotations

from dataclasses import dataclass

from vo3rl.data.schema import DataType


@dataclass(frozen=True)
class BonusTable:
    """The constants of the bonus table (paper values as defaults)."""

    decay_lambda: float = 0.05  # λ
    bonus_base: float = 0.5  # b0
    clue_weight: float = 0.5  # w_g
    single_no_tool_bonus: float = 0.75  # b0 + w_g·0.5: a direct answer counts as half a perfect clue
    multi_no_tool_bonus: float = 0.5


def turn_decay(data_type: DataType, tool_calls: int, table: BonusTable = BonusTable()) -> float:
    """γ: 1 − λ(k−1) for single-clue tool samples, 1 − 2λk for single-clue no-tool samples, 1 otherwise;
    never below 0 (long trajectories under a generous turn limit would otherwise turn it negative)."""
    if data_type == DataType.SINGLE_CLUE_TOOL:
        return max(0.0, 1.0 - table.decay_lambda * (tool_calls - 1))
    if data_type == DataType.SINGLE_CLUE_NO_TOOL:
        return max(0.0, 1.0 - 2.0 * table.decay_lambda * tool_calls)
    return 1.0


def trajectory_bonus(
    data_type: DataType,
    tool_calls: int,
    clue_single: float,
    clue_multi: float,
    table: BonusTable = BonusTable(),
) -> float:
    """β for a trajectory whose answer and format are both perfect (the caller checks that).

    | single clue, tool   | k > 0: (1 − λ(k−1))·(b0 + w_g·S_single) |
    | multi clue, tool    | k > 0: b0 + w_g·S_multi                 |
    | single clue, no tool| (1 − 2λk)·single_no_tool_bonus          |
    | multi clue, no tool | multi_no_tool_bonus                     |
    | temporal grounding  | 0 (its reward is tIoU + r_fmt)          |
    """
    gamma = turn_decay(data_type, tool_calls, table)
    if data_type == DataType.SINGLE_CLUE_TOOL:
        return gamma * (table.bonus_base + table.clue_weight * clue_single) if tool_calls > 0 else 0.0
    if data_type == DataType.MULTI_CLUE_TOOL:
        return gamma * (table.bonus_base + table.clue_weight * clue_multi) if tool_calls > 0 else 0.0
    if data_type == DataType.SINGLE_CLUE_NO_TOOL:
        return gamma * table.single_no_tool_bonus
    if data_type == DataType.MULTI_CLUE_NO_TOOL:
        return table.multi_no_tool_bonus
    return 0.0


def video_o3_reward(
    r_fmt: float, r_acc: float, beta: float, w_format: float = 1.0, w_accuracy: float = 1.0, w_bonus: float = 1.0
) -> float:
    """R = w_format·r_fmt + w_accuracy·r_acc·(1 + w_bonus·β), β paid only when r_acc = r_fmt = 1 exactly
    (the paper's weights are all 1)."""
    paid = w_bonus * beta if (r_acc == 1.0 and r_fmt == 1.0) else 0.0
    return w_format * r_fmt + w_accuracy * r_acc * (1.0 + paid)
