"""Score greedy multi-turn episodes with the rewards: the "before and after SFT" measurement."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from vo3rl.agent.loop import LoopConfig, safe_episode
from vo3rl.evaluation.episodes import episode_record, write_episodes
from vo3rl.log import ProgressLog, get_logger, progress
from vo3rl.rewards import RewardConfig, score

log = get_logger(__name__)


def evaluate_episodes(engine, samples, tokenizer, loop: LoopConfig, reward: RewardConfig | None = None,
                      cache=None, desc: str = "eval", episodes_path: str | Path | None = None) -> dict:
    """Mean format reward, accuracy, turns, tool calls and exceeded rate over `samples`; unreadable
    videos are skipped and counted (`skipped`). `examples` keeps the first two episodes' texts;
    `episodes_path`, if given, receives every episode (texts, reward components, errors) as JSONL."""
    reward = reward or RewardConfig(protocol="video_o3")
    totals, skipped, records = Counter(), Counter(), []
    n = 0
    start = time.perf_counter()
    samples = list(samples)
    lines = ProgressLog(desc, len(samples), unit="samples")  # for logs, where the bar is not shown
    for index, sample in enumerate(progress(samples, desc=desc, unit="sample")):
        lines.update(index)
        traj, problem = safe_episode(engine, sample, tokenizer, loop, cache=cache)
        if traj is None:
            skipped[problem] += 1
            continue
        result = score(sample, traj.assistant_texts, reward)
        n += 1
        totals["format"] += result.components.get("format", 0.0)
        totals["accuracy"] += result.components.get("accuracy", 0.0)
        totals["reward"] += result.total
        totals["turns"] += traj.turns
        totals["tool_calls"] += len(traj.tool_calls)
        totals["exceeded"] += float(traj.exceeded)
        records.append(episode_record(sample, traj, result))
    lines.update(len(samples))
    if episodes_path:
        write_episodes(episodes_path, records)
    metrics = {key: totals[key] / n if n else 0.0 for key in ("format", "accuracy", "reward", "turns", "tool_calls", "exceeded")}
    examples = [{key: record[key] for key in ("sample", "answer", "turns")} for record in records[:2]]
    metrics.update(n=n, skipped=dict(skipped), seconds=time.perf_counter() - start, examples=examples)
    log.info("%s: format %.3f accuracy %.3f over %d samples (%.0f s)", desc, metrics["format"],
             metrics["accuracy"], n, metrics["seconds"])
    return metrics
