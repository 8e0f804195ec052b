"""Trajectories -> model inputs, and the token-budget split into micro-batches.

Model rows are either one trajectory each, right-padded to the longest (the default), or, packed, all
of the micro-batch's trajectories back to back in one row (`vo3rl.train.packing`), each with its own
MRoPE positions and attending only within itself. Targets are always laid out per trajectory
([trajectories, longest], as if padded), so losses and log-prob bookkeeping never see the packing.
Which positions carry a target is decided here: position i predicts token i+1, so a target exists where
token i+1 is trained (`loss_on` "assistant": assistant tokens; "all": every real token after the first).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from vo3rl.model.positions import mrope_positions
from vo3rl.model.video_inputs import VideoInputs
from vo3rl.train.masks import RowLayout, dense_mask
from vo3rl.train.tdam import tdam_blocks


@dataclass
class Batch:
    """One micro-batch of B trajectories in R model rows of W tokens (R = B unless packed).
    `input_ids` long [R, W]; `attention_mask` long [R, W] (1 = real token) or the bool [R, 1, W, W]
    SDPA mask (TDAM or packed rows); `position_ids` long [3, R, W]; `targets` long [B, L] (token i+1 at
    i of trajectory b); `target_mask` bool [B, L] (positions that are scored); `lengths` tokens per
    trajectory; `layout` where each trajectory sits and its TDAM blocks (None: one per row, no blocks)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    targets: torch.Tensor
    target_mask: torch.Tensor
    lengths: list[int]
    videos: VideoInputs | None
    tdam: bool = False
    layout: RowLayout | None = None

    @property
    def n_targets(self) -> int:
        return int(self.target_mask.sum())

    @property
    def row_layout(self) -> RowLayout:
        return self.layout if self.layout is not None else RowLayout.padded(self.lengths)

    def to(self, device) -> "Batch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        videos = None
        if self.videos is not None:
            videos = VideoInputs(move(self.videos.pixel_values), move(self.videos.grid_thw), self.videos.second_per_grid)
        return Batch(move(self.input_ids), move(self.attention_mask), move(self.position_ids), move(self.targets),
                     move(self.target_mask), self.lengths, videos, self.tdam, self.layout)


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
                loss_on: str = "assistant", use_tdam: bool = False, spatial_merge: int = 2, pack: bool = False,
                dense: bool = True) -> Batch:
    """The Batch of `trajectories`; `videos` are their patchified videos in sequence order. With
    `use_tdam` rows carry their TDAM blocks (trajectories with < 2 videos have none); with `pack` all
    trajectories share one row. `dense`: build the SDPA boolean mask when rows need one (TDAM, packing);
    False leaves the 2-D mask, for FlexAttention, which builds its block mask from `layout` instead."""
    lengths = [len(t) for t in trajectories]
    blocks = [tdam_blocks(t) if use_tdam else [] for t in trajectories]
    layout = (RowLayout.packed if pack else RowLayout.padded)(lengths, blocks)
    n, longest = len(trajectories), max(lengths)
    ids = np.full((layout.rows, layout.width), pad_id, dtype=np.int64)
    positions = np.zeros((3, layout.rows, layout.width), dtype=np.int64)
    real = np.zeros((layout.rows, layout.width), dtype=np.int64)
    targets = np.full((n, longest), pad_id, dtype=np.int64)
    target_mask = np.zeros((n, longest), dtype=bool)
    seconds = iter(videos.second_per_grid if videos is not None else [])
    for index, (traj, seg) in enumerate(zip(trajectories, layout.segments)):
        length, row, span = seg.length, seg.row, slice(seg.start, seg.start + seg.length)
        ids[row, span] = traj.token_ids
        real[row, span] = 1
        targets[index, : length - 1] = traj.token_ids[1:]
        target_mask[index, : length - 1] = trained_tokens(traj, loss_on)[1:]
        placed = [(v.start, tuple(v.grid_thw), next(seconds)) for v in sorted(traj.videos, key=lambda v: v.start)]
        positions[:, row, span] = mrope_positions(length, placed, tokens_per_second, spatial_merge)
    for row in range(layout.rows):
        # Padding continues the row's last positions so no index repeats inside a row.
        used = int(real[row].sum())
        positions[:, row, used:] = positions[:, row, :used].max() + 1 + np.arange(layout.width - used)
    attention = torch.from_numpy(real)
    if dense and layout.needs_custom_mask:
        attention = dense_mask(layout)
    return Batch(torch.from_numpy(ids), attention, torch.from_numpy(positions), torch.from_numpy(targets),
                 torch.from_numpy(target_mask), lengths, videos, use_tdam, layout)
