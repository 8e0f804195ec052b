"""What a run report shows, free of plotting: a stage's `metrics.jsonl` read into step series, and the
panels (which series each figure holds).

A row is one JSON object with an integer `step` and numeric metrics; a line that is not such an
object, and a value that is not a finite number, is left out and counted, never fatal (the file
may be cut off mid-line by a killed run).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

MAX_LINE_CHARS = 1 << 20


@dataclass
class StageMetrics:
    """`series[key]` = (steps, values) in file order; `skipped_lines`, `skipped_values`: what was left out."""

    name: str
    series: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    skipped_lines: int = 0
    skipped_values: int = 0

    def add(self, step: int, key: str, value: float) -> None:
        steps, values = self.series.setdefault(key, ([], []))
        steps.append(step)
        values.append(value)


def read_metrics(path: str | Path, name: str) -> StageMetrics:
    """The numeric series of a `metrics.jsonl`."""
    stage = StageMetrics(name)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                row = json.loads(line[:MAX_LINE_CHARS])
            except ValueError:
                stage.skipped_lines += 1
                continue
            step = row.get("step") if isinstance(row, dict) else None
            if not isinstance(step, int) or isinstance(step, bool):
                stage.skipped_lines += 1
                continue
            for key, value in row.items():
                if key == "step" or isinstance(value, (list, dict, str)) or value is None:
                    continue  # ids and texts (batch/prompt_ids): not a series
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    stage.skipped_values += 1
                    continue
                stage.add(step, key, float(value))
    return stage


@dataclass(frozen=True)
class Panel:
    """One figure: `title`, and `keys(all_keys)` -> the series it draws, in order."""

    name: str
    title: str
    keys: Callable[[list[str]], list[str]]
    ylabel: str = ""


def _named(*wanted: str) -> Callable[[list[str]], list[str]]:
    return lambda keys: [k for k in wanted if k in keys]


def _prefixed(prefix: str, *, exclude: tuple[str, ...] = ()) -> Callable[[list[str]], list[str]]:
    return lambda keys: sorted(k for k in keys if k.startswith(prefix) and k not in exclude)


REWARD_EXTRAS = ("reward/format_json_errors", "reward/format_well_formed", "reward/tool_calls", "reward/bonus_paid")

PANELS = (
    Panel("reward", "Reward per component (train rollouts)", _prefixed("reward/", exclude=REWARD_EXTRAS), "reward"),
    Panel("accuracy", "Accuracy", _named("reward/accuracy", "eval/accuracy"), "fraction"),
    Panel("format", "Format", _named("reward/format", "eval/format"), "fraction"),
    Panel("tools", "Tool calls and turns per trajectory",
          _named("rollout/tool_calls", "rollout/turns", "eval/tool_calls", "eval/turns"), "per trajectory"),
    Panel("phases", "Seconds per phase of a step", _prefixed("time/"), "seconds"),
    Panel("throughput", "Throughput", _prefixed("perf/"), "per second"),
    Panel("loss", "Training loss", _named("train/loss", "train/pg_loss", "train/policy_loss", "eval/loss"), "loss"),
    Panel("learner", "Learner", _named("train/kl", "train/clip_frac", "train/dual_clip_frac", "train/entropy",
                                       "train/grad_norm", "train/rollout_learner_logprob_gap"), ""),
)


def before_after(stage: StageMetrics, prefix: str = "eval/") -> dict[str, tuple[float, float]]:
    """Each evaluation metric's first and last value ("before" and "after" training); not SFT's
    held-out loss, first logged after `sft.eval_every` steps (the loss panel draws it)."""
    out = {}
    for key, (steps, values) in stage.series.items():
        if key.startswith(prefix) and key not in (f"{prefix}n", f"{prefix}loss") and len(values) >= 2:
            out[key] = (values[0], values[-1])
    return out
