"""Trajectories -> padded model inputs, and the token-budget split into micro-batches.

Rows are right-padded to the longest row of the micro-batch. Which positions carry a target is decided
here: position i predicts token i+1, so a target exists where token i+1 is trained (`loss_on`
"assistant": assistant tokens; "all": every real token after the first).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from vo3rl.model.positions import mrope_positions
from vo3rl.model.video_inputs import VideoInputs
from vo3rl.train.tdam import Block, batch_mask, tdam_blocks


@dataclass
class Batch:
    """One micro-batch. `input_ids` long [B, L]; `attention_mask` long [B, L] (1 = real token) or a
    bool [B, 1, L, L] TDAM mask; `position_ids` long [3, B, L]; `targets` long [B, L] (token i+1 at i);
    `target_mask` bool [B, L] (positions that are scored); `lengths` real tokens per row."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    targets: torch.Tensor
    target_mask: torch.Tensor
    lengths: list[int]
    videos: VideoInputs | None
    tdam: bool = False

    @property
    def n_targets(self) -> int:
        return int(self.target_mask.sum())

    def to(self, device) -> "Batch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        videos = None
        if self.videos is not None:
            videos = VideoInputs(move(self.videos.pixel_values), move(self.videos.grid_thw), self.videos.second_per_grid)
        return Batch(move(self.input_ids), move(self.attention_mask), move(self.position_ids), move(self.targets),
                     move(self.target_mask), self.lengths, videos, self.tdam)


def trained_tokens(trajectory, loss_on: str = "assistant") -> np.ndarray:
    """bool [N]: which tokens carry loss. "assistant": `Trajectory.loss_mask()` (none when exceeded);
    "all": every token but the first (and none when exceeded)."""
    if loss_on == "assistant":
        return trajectory.loss_mask()
    mask = np.ones(len(trajectory), dtype=bool)
    mask[0] = False
    return mask & (not trajectory.exceeded)


def n_trained_tokens(trajectories, loss_on: str = "assistant") -> int:
    """The count the loss is normalised by (sum over the global batch, before any split)."""
    return int(sum(trained_tokens(t, loss_on).sum() for t in trajectories))


def micro_batches(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Indices grouped so that rows × longest row <= `token_budget` (a longer single row forms its own
    group). Rows are sorted by length so padding stays small; order inside the result is deterministic."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    groups: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        if current and (len(current) + 1) * longest > token_budget:
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups


def build_batch(trajectories, videos: VideoInputs | None, pad_id: int, tokens_per_second: float,
                loss_on: str = "assistant", use_tdam: bool = False, spatial_merge: int = 2) -> Batch:
    """Pad `trajectories` into one Batch; `videos` are their patchified videos in sequence order.
    With `use_tdam` the attention mask is the TDAM 4-D mask (rows with < 2 videos get plain causal)."""
    lengths = [len(t) for t in trajectories]
    width = max(lengths)
    n = len(trajectories)
    ids = np.full((n, width), pad_id, dtype=np.int64)
    targets = np.full((n, width), pad_id, dtype=np.int64)
    target_mask = np.zeros((n, width), dtype=bool)
    positions = np.zeros((3, n, width), dtype=np.int64)
    seconds = iter(videos.second_per_grid if videos is not None else [])
    blocks: list[list[Block]] = []
    for row, traj in enumerate(trajectories):
        length = lengths[row]
        ids[row, :length] = traj.token_ids
        targets[row, : length - 1] = traj.token_ids[1:]
        target_mask[row, : length - 1] = trained_tokens(traj, loss_on)[1:]
        spans = sorted(traj.videos, key=lambda v: v.start)
        placed = [(v.start, tuple(v.grid_thw), next(seconds)) for v in spans]
        positions[:, row, :length] = mrope_positions(length, placed, tokens_per_second, spatial_merge)
        # Padding continues the text positions so no index repeats inside a row.
        positions[:, row, length:] = positions[:, row, length - 1 : length].max() + 1 + np.arange(width - length)
        blocks.append(tdam_blocks(traj) if use_tdam else [])
    if use_tdam:
        attention = batch_mask(width, lengths, blocks)
    else:
        attention = torch.from_numpy((np.arange(width)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64))
    return Batch(torch.from_numpy(ids), attention, torch.from_numpy(positions), torch.from_numpy(targets),
                 torch.from_numpy(target_mask), lengths, videos, use_tdam)
