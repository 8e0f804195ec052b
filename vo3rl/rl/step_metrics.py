"""The numbers one RL step reports (W&B and metrics.jsonl)."""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from vo3rl.agent.trajectory import Role


def rollout_metrics(trajectories: list, results: list) -> dict[str, float]:
    """Means over the step's trajectories: every reward component (`reward/<name>`), turns, tool calls,
    errors, exceeded rate, lengths and vision tokens."""
    if not trajectories:
        return {}
    components: dict[str, list[float]] = defaultdict(list)
    for result in results:
        for name, value in result.components.items():
            components[name].append(value)
    out = {f"reward/{name}": float(np.mean(values)) for name, values in components.items()}
    out.update({
        "rollout/turns": float(np.mean([t.turns for t in trajectories])),
        "rollout/tool_calls": float(np.mean([len(t.tool_calls) for t in trajectories])),
        "rollout/errors_per_trajectory": float(np.mean([t.n_errors for t in trajectories])),
        "rollout/error_rate": float(np.mean([t.n_errors > 0 for t in trajectories])),
        "rollout/exceeded_rate": float(np.mean([t.exceeded for t in trajectories])),
        "rollout/tokens": float(np.mean([len(t) for t in trajectories])),
        "rollout/vision_tokens": float(np.mean([t.n_vision_tokens for t in trajectories])),
        "rollout/generated_tokens": float(np.mean([int((t.roles == Role.ASSISTANT).sum()) for t in trajectories])),
    })
    return out


def throughput(trajectories: list, seconds: float) -> dict[str, float]:
    """Generated tokens/s, vision tokens/s and samples/s of the rollout phase."""
    if seconds <= 0:
        return {}
    generated = sum(int((t.roles == 1).sum()) for t in trajectories)
    return {
        "perf/generated_tokens_per_s": generated / seconds,
        "perf/vision_tokens_per_s": sum(t.n_vision_tokens for t in trajectories) / seconds,
        "perf/samples_per_s": len(trajectories) / seconds,
    }
