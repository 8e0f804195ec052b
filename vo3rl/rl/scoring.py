"""From a finished trajectory to its reward: the glue between `Trajectory` and `rewards.score`."""
from __future__ import annotations

from vo3rl.agent.trajectory import Trajectory
from vo3rl.data.schema import Sample
from vo3rl.rewards import RewardConfig, RewardResult, score


def seen_frame_size(trajectory: Trajectory) -> tuple[int, int] | None:
    """(width, height) in pixels of the first video's frames as the model saw them: Open-o3's boxes
    are absolute pixels of that frame. grid_thw counts 14-px patches."""
    if not trajectory.videos:
        return None
    _, rows, cols = trajectory.videos[0].grid_thw
    return cols * 14, rows * 14


def score_trajectory(trajectory: Trajectory, sample: Sample, cfg: RewardConfig, progress: float) -> RewardResult:
    """Every reward component of one trajectory. `progress` is the fraction of training done (0..1).
    Never raises: a failing term is 0 and named in `errors`."""
    try:
        return score(sample, trajectory.assistant_texts, cfg, progress, seen_frame_size(trajectory))
    except Exception as exc:  # rewards.score already guards its terms; this guards the glue
        return RewardResult(0.0, {"total": 0.0}, {"score": f"{type(exc).__name__}: {exc}"[:300]})
