"""Evaluation by confidence-aware test-time scaling (`vo3rl eval --tts N --vote RULE`): each
sample's prediction is the answer voted over N sampled answers (`vo3rl.rollout.tts`).

The voted answer is one of the sampled ones, so it is scored as the reward scored the first answer
that votes for it: the record's `components` (accuracy, format, …) and `turns` are that answer's,
`prediction` the voted answer, and `tts` holds all N answers with their crops, ratings, weights and
single-answer accuracies. Benchmark summaries then read these records like greedy ones.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from vo3rl.evaluation.episodes import episode_record, evaluate_records, write_episodes


def tts_record(sample, result, scored: list) -> dict:
    """The episode record of one `TTSResult`, `scored` being the reward results of its answers."""
    chosen = next((i for i, answer in enumerate(result.answers) if answer == result.prediction and answer), 0)
    record = episode_record(sample, result.trajectories[chosen], scored[chosen])
    record["prediction"] = result.prediction
    record["tts"] = {"n": len(result.answers), "vote": result.vote, "chosen": chosen, "answers": result.answers,
                     "texts": result.texts, "crops": result.crops, "ratings": result.ratings,
                     "weights": result.weights,
                     "accuracies": [float(s.components.get("accuracy", 0.0)) for s in scored]}
    return record


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def evaluate_tts_records(rollout, rewards, samples: list, n: int, vote: str = "confidence",
                         episodes_path: str | Path | None = None) -> tuple[dict, list[dict]]:
    """`eval/accuracy` of the voted answers, `eval/sample_accuracy` of the single sampled answers
    (what one answer at temperature 1 gets), `eval/format` of the chosen answers, `eval/n`, and
    `tts/n`, `tts/vote`, `tts/rating_turns` (per sample), `tts/mean_weight`; with every record
    (`tts_record`), written to `episodes_path` (JSONL) when given."""
    if not samples:
        return {}, []
    by_id = {s.id: s for s in samples}
    results = rollout.tts(samples, n, vote)
    trajectories = [t for result in results for t in result.trajectories]
    scored = rewards.score(trajectories, [by_id[t.sample_id] for t in trajectories], progress=1.0)
    records, start = [], 0
    for result in results:
        end = start + len(result.trajectories)
        records.append(tts_record(by_id[result.sample_id], result, scored[start:end]))
        start = end
    if episodes_path:
        write_episodes(episodes_path, records)
    rating_turns = sum(stats.get("rating_turns", 0) for stats in getattr(rollout, "last_stats", []))
    metrics = {"eval/accuracy": _mean([float(r["components"].get("accuracy", 0.0)) for r in records]),
               "eval/sample_accuracy": _mean([a for r in records for a in r["tts"]["accuracies"]]),
               "eval/format": _mean([float(r["components"].get("format", 0.0)) for r in records]),
               "eval/n": len(records), "tts/n": n, "tts/vote": vote,
               "tts/rating_turns": rating_turns / len(records) if records else 0.0,
               "tts/mean_weight": _mean([w for r in records for w in r["tts"]["weights"]])}
    return metrics, records


def evaluator(tts: dict | None):
    """`evaluate(rollout, rewards, samples, episodes_path=None) -> (metrics, records)`: test-time
    scaling with `tts` ({"n", "vote"}), else one greedy episode per sample (`evaluate_records`)."""
    return partial(evaluate_tts_records, n=tts["n"], vote=tts["vote"]) if tts else evaluate_records
