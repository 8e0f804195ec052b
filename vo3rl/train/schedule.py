"""Learning-rate schedule: linear warmup, then cosine decay to `min_ratio` of the peak."""
from __future__ import annotations

import math


def cosine_with_warmup(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based). Warmup reaches 1.0 at the end of
    `warmup_steps`; the cosine reaches `min_ratio` at `total_steps`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer, total_steps: int, warmup_ratio: float, min_ratio: float = 0.0):
    """A LambdaLR over `total_steps` optimizer steps with `warmup_ratio` of them warming up."""
    import torch

    warmup = int(round(warmup_ratio * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_with_warmup(step, total_steps, warmup, min_ratio))
