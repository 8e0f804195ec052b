"""Pure reward functions and their composition from recipe weights (no Ray, torch or model code).

`score(sample, turns, RewardConfig(...))` is the entry point; the modules hold one idea each:
answer, format, clue, trajectory (Video-o3's bonus), temporal and spatial (Open-o3), judge.
"""
from vo3rl.rewards.compose import RewardConfig, RewardResult, score

__all__ = ["RewardConfig", "RewardResult", "score"]
