"""Evaluation on the rollout and reward services: greedy episodes with the evaluation turn limit (the
last turn is told to answer), scored, every episode kept. The RL run calls it before, during and after
training; `vo3rl eval` (`vo3rl.orchestration.eval_run`) calls it on any checkpoint."""
from __future__ import annotations

import json
from pathlib import Path

from vo3rl.rl.step_metrics import rollout_metrics


def episode_record(sample, trajectory, result) -> dict:
    """One scored episode as a JSON-ready dict: what the model wrote each turn and how it scored."""
    return {"sample": sample.id, "answer": sample.answer, "turns": trajectory.assistant_texts,
            "tool_calls": len(trajectory.tool_calls), "exceeded": trajectory.exceeded,
            "total": result.total, "components": result.components, "errors": result.errors}


def write_episodes(path: str | Path, records: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def evaluate(rollout, rewards, samples: list, episodes_path: str | Path | None = None) -> dict:
    """`eval/<metric>` means over `samples` (one greedy trajectory each), and `eval/n` episodes run;
    every episode goes to `episodes_path` (JSONL) when given."""
    if not samples:
        return {}
    by_id = {s.id: s for s in samples}
    trajectories = rollout.generate(samples, 1, "eval")
    results = rewards.score(trajectories, [by_id[t.sample_id] for t in trajectories], progress=1.0)
    if episodes_path:
        write_episodes(episodes_path, [episode_record(by_id[t.sample_id], t, r) for t, r in zip(trajectories, results)])
    metrics = {f"eval/{name.split('/', 1)[-1]}": value for name, value in rollout_metrics(trajectories, results).items()}
    metrics["eval/n"] = len(trajectories)
    return metrics
