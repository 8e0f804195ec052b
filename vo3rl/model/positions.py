"""Qwen2.5-VL's multimodal RoPE positions (temporal, height, width) of one token sequence.

Text tokens advance all three indices by one. A video of grid (t, h, w) (merged: h/2, w/2) starting
after text position p gets temporal index p + ⌊i_t × tokens_per_second × second_per_grid⌋ and spatial
indices p + row, p + column; the text after it resumes at (largest index so far) + 1.

This is the formula of the released model and of vLLM's `get_mrope_input_positions`. transformers 5.19's
`get_rope_index` resumes text after a video at p + max(h, w)/2 instead, which differs once the temporal
indices outgrow the spatial ones; the learner passes these positions explicitly so its log-probs agree
with the rollout engine's.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def mrope_positions(
    length: int,
    videos: Sequence[tuple[int, tuple[int, int, int], float]],
    tokens_per_second: float,
    spatial_merge: int = 2,
) -> np.ndarray:
    """int64 [3, length]. `videos`: (first pad-token index, grid_thw before merging, second_per_grid)
    per video, in any order; each video's tokens are t·(h/merge)·(w/merge) consecutive indices."""
    out = np.empty((3, length), dtype=np.int64)
    cursor, next_pos = 0, 0
    for start, (t, h, w), seconds in sorted(videos, key=lambda v: v[0]):
        h, w = h // spatial_merge, w // spatial_merge
        text = start - cursor
        out[:, cursor:start] = np.arange(text) + next_pos
        base = next_pos + text
        grid = np.indices((t, h, w)).reshape(3, -1)
        grid[0] = (np.arange(t) * (tokens_per_second * seconds)).astype(np.int64).repeat(h * w)
        out[:, start : start + t * h * w] = grid + base
        cursor = start + t * h * w
        next_pos = int(out[:, :cursor].max()) + 1
    out[:, cursor:] = np.arange(length - cursor) + next_pos
    return out
