"""Where runs report: a local `metrics.jsonl` always, and W&B when the recipe's `wandb.mode` is not
"disabled" (offline mode needs no network or key; `wandb sync` uploads later)."""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from vo3rl.log import get_logger
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import VideoError

log = get_logger(__name__)


def wandb_mode(recipe) -> str:
    """The W&B mode in force: an environment `WANDB_MODE` wins over the recipe's `wandb.mode`."""
    return os.environ.get("WANDB_MODE") or recipe.wandb.mode


def open_wandb(recipe, out: Path, job_type: str, resume_id: str | None = None):
    """A W&B run for this stage with the whole resolved recipe as its config, or None when disabled.
    `resume_id`: the id of the run a resumed stage continues (kept in its checkpoint's driver state)."""
    mode = wandb_mode(recipe)
    if mode == "disabled":
        return None
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    config = json.loads(json.dumps(asdict(recipe), default=str))
    return wandb.init(project=recipe.wandb.project, name=f"{recipe.wandb.name or recipe.run.name}-{job_type}",
                      group=recipe.wandb.group or recipe.run.name, job_type=job_type, mode=mode,
                      dir=str(recipe.wandb.dir or out), reinit="finish_previous", config=config,
                      id=resume_id, resume="allow" if resume_id else None)


class MetricsLog:
    """Appends one JSON line per `log` call to `path` and mirrors the numbers to W&B."""

    def __init__(self, path: Path, wandb_run=None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.wandb = wandb_run

    def log(self, record: dict, step: int) -> None:
        clean = {k: v for k, v in record.items() if not (isinstance(v, float) and math.isnan(v))}
        with self.path.open("a") as fh:
            fh.write(json.dumps({"step": step, **clean}, default=str) + "\n")
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in clean.items() if isinstance(v, (int, float))}, step=step)

    def table(self, name: str, rows: list[dict], step: int) -> None:
        """A table of rows (dicts with the same keys); an "frames" value that is an image array becomes
        a W&B image. The JSONL gets the rows without images."""
        if not rows:
            return
        with self.path.open("a") as fh:
            plain = [{k: v for k, v in row.items() if k != "frames"} for row in rows]
            fh.write(json.dumps({"step": step, "table": name, "rows": plain}, default=str) + "\n")
        if self.wandb is not None:
            import wandb

            columns = list(rows[0])
            data = [[wandb.Image(row[c]) if c == "frames" and row[c] is not None else row[c] for c in columns]
                    for row in rows]
            self.wandb.log({name: wandb.Table(columns=columns, data=data)}, step=step)

    @property
    def wandb_id(self) -> str | None:
        """The W&B run's id (kept with checkpoints, so a resumed stage continues the same run)."""
        return self.wandb.id if self.wandb is not None else None

    def close(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


def frame_strip(trajectory, max_frames: int = 4, cache=None):
    """uint8 [H, W*k, 3]: up to `max_frames` frames of each video the trajectory saw, side by side,
    re-sampled from the references exactly as the model saw them; None when a video cannot be read."""
    strips = []
    for span in trajectory.videos:
        try:
            clip = sample_clip(span.ref, span.spec, cache)
        except VideoError:
            return None
        chosen = np.linspace(0, len(clip.frames) - 1, min(max_frames, len(clip.frames))).round().astype(int)
        strips.append(np.concatenate(list(clip.frames[chosen]), axis=1))
    if not strips:
        return None
    width = max(s.shape[1] for s in strips)
    padded = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0))) for s in strips]
    heights = {s.shape[0] for s in padded}
    return np.concatenate(padded, axis=0) if len(heights) == 1 else padded[0]


def trajectory_table(trajectories: list, results: list) -> list[dict]:
    """Rows for a W&B table of sample trajectories: what the model wrote, how it scored, what it saw."""
    rows = []
    for trajectory, result in zip(trajectories, results):
        rows.append({
            "sample": trajectory.sample_id,
            "reward": round(result.total, 4),
            "accuracy": result.components.get("accuracy"),
            "format": result.components.get("format"),
            "turns": trajectory.turns,
            "tool_calls": len(trajectory.tool_calls),
            "exceeded": trajectory.exceeded_reason or "",
            "assistant": "\n---\n".join(trajectory.assistant_texts)[:4000],
            "frames": frame_strip(trajectory),
        })
    return rows
