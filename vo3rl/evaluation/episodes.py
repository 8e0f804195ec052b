"""Evaluation on the rollout and reward services: greedy episodes with the evaluation turn limit (the
last turn is told to answer), scored, every episode kept. The RL run calls it before, during and after
training; `vo3rl eval` (`vo3rl.orchestration.eval_run`) calls it on any checkpoint."""
from __future__ import annotations

import json
import time
from pathlib import Path

from vo3rl.agent.parse import final_answer
from vo3rl.evaluation.seeking import clue_hit, clue_iog, has_clues, seek_episode, seeking_metrics
from vo3rl.rl.step_metrics import rollout_metrics


GROUP_KEYS = ("task_type", "question_type", "Question Type", "question_category", "duration", "duration_group",
              "domain", "sub_category")


def episode_record(sample, trajectory, result) -> dict:
    """One scored episode as a JSON-ready dict: the question, what the model wrote each turn, its
    parsed answer against the ground truth, how it scored, the views it watched (the global view
    and each crop: interval in seconds of the original video, rate, frames, vision tokens and the
    budget it was sampled under), the sample's benchmark groups (task type, VideoMME duration, …),
    `seek` (whether the sample needs the tool, and for one with clue time whether a crop hit a clue
    and the clue IoG) and `seconds` (wall, from the start of the rollout call to the episode's end)."""
    texts = trajectory.assistant_texts
    views = [{"start_s": span.spec.start_s, "end_s": span.spec.end_s, "fps": span.spec.fps,
              "frames": span.n_frames, "vision_tokens": span.n_vision_tokens, "turn": span.turn,
              "max_frames": span.spec.max_frames, "max_tokens": span.spec.max_tokens,
              "max_tokens_per_patch": span.spec.max_tokens_per_patch}
             for span in sorted(trajectory.videos, key=lambda span: span.start)]
    seek = seek_episode(sample, trajectory, result)
    seek_record = {"needs_tool": seek.needs_tool}
    if has_clues(seek):
        seek_record.update(clue_hit=clue_hit(seek), clue_iog=round(clue_iog(seek), 4))
    return {"sample": sample.id, "question": sample.question, "task": sample.task.value, "answer": sample.answer,
            "prediction": final_answer(texts[-1]) if texts else None, "turns": texts,
            "tool_calls": len(trajectory.tool_calls), "exceeded": trajectory.exceeded,
            "views": views, "vision_tokens": trajectory.n_vision_tokens, "seconds": round(trajectory.seconds, 3),
            "groups": {key: sample.extra[key] for key in GROUP_KEYS if isinstance(sample.extra.get(key), (str, int))},
            "seek": seek_record,
            "total": result.total, "components": result.components, "errors": result.errors}


def write_episodes(path: str | Path, records: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def evaluate_records(rollout, rewards, samples: list, episodes_path: str | Path | None = None) -> tuple[dict, list[dict]]:
    """`eval/<metric>` means over `samples` (one greedy trajectory each), `eval/n` episodes run and
    `eval/seconds` (wall, generation and scoring), with every episode's record (`episode_record`), also
    written to `episodes_path` (JSONL) when given. The seeking metrics (`vo3rl.evaluation.seeking`:
    `eval/clue_hit_rate`, `eval/clue_iog_tool`, `eval/accuracy_tool`, …) are added under their own names;
    a name the rollout's or the reward's metrics already use keeps their value."""
    if not samples:
        return {}, []
    start = time.perf_counter()
    by_id = {s.id: s for s in samples}
    trajectories = rollout.generate(samples, 1, "eval")
    results = rewards.score(trajectories, [by_id[t.sample_id] for t in trajectories], progress=1.0)
    records = [episode_record(by_id[t.sample_id], t, r) for t, r in zip(trajectories, results)]
    if episodes_path:
        write_episodes(episodes_path, records)
    metrics = {f"eval/{name.split('/', 1)[-1]}": value for name, value in rollout_metrics(trajectories, results).items()}
    seeking = seeking_metrics([seek_episode(by_id[t.sample_id], t, r) for t, r in zip(trajectories, results)])
    for name, value in seeking.items():
        metrics.setdefault(f"eval/{name}", value)
    metrics["eval/n"] = len(trajectories)
    metrics["eval/seconds"] = time.perf_counter() - start
    return metrics, records


def evaluate(rollout, rewards, samples: list, episodes_path: str | Path | None = None) -> dict:
    """The metrics of `evaluate_records`."""
    return evaluate_records(rollout, rewards, samples, episodes_path)[0]
