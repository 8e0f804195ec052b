"""What each query token of a micro-batch may attend to, described once and rendered two ways.

A model row holds one trajectory (padded rows) or several (packed rows). `RowLayout` says where each
trajectory sits in its row and which TDAM blocks it carries (`vo3rl.train.tdam.Block`, in the
trajectory's own token indices). From it come three per-token tables of shape [rows, width] — never an
L×L tensor:

- `document`: the trajectory index of each real token; padding gets a unique negative id, so a padding
  query sees only itself (no attention row is empty) and no real query sees padding;
- `key_group`: for a key inside a blocked key range (a video's pad run), that range's number 1..62 in
  its row; 0 elsewhere;
- `query_bits`: for a query, bit g is set when the query may not see key group g.

`allowed(*tables.tensors, b, q, k)` is the one definition of the mask: causal, same document, not
blocked. It is written with tensor ops only, so it runs broadcast over index grids (`dense_mask`, the
SDPA boolean mask; the tile counts of `vo3rl.train.flex_mask`) and as FlexAttention's mask_mod on
scalar indices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from vo3rl.train.tdam import Block

MAX_KEY_GROUPS = 62  # bit 0 means "no group"; bit 63 would be the sign bit of int64


@dataclass(frozen=True)
class Segment:
    """One trajectory in a model row: tokens [start, start + length) of row `row`, with its TDAM
    `blocks` in the trajectory's own indices (empty: plain causal)."""

    row: int
    start: int
    length: int
    blocks: tuple[Block, ...] = ()


@dataclass(frozen=True)
class RowLayout:
    """The micro-batch's trajectories in input order (`segments[i]` is trajectory i) laid out in
    `rows` model rows of `width` tokens each."""

    segments: tuple[Segment, ...]
    rows: int
    width: int

    @classmethod
    def padded(cls, lengths: Sequence[int], blocks: Sequence[Sequence[Block]] | None = None) -> "RowLayout":
        """One trajectory per row, right-padded to the longest."""
        blocks = blocks if blocks is not None else [()] * len(lengths)
        segments = tuple(Segment(i, 0, n, tuple(b)) for i, (n, b) in enumerate(zip(lengths, blocks)))
        return cls(segments, len(lengths), max(lengths))

    @classmethod
    def packed(cls, lengths: Sequence[int], blocks: Sequence[Sequence[Block]] | None = None) -> "RowLayout":
        """All trajectories back to back in one row, in the given order."""
        blocks = blocks if blocks is not None else [()] * len(lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
        segments = tuple(Segment(0, int(s), n, tuple(b)) for s, n, b in zip(starts, lengths, blocks))
        return cls(segments, 1, int(sum(lengths)))

    @property
    def is_packed(self) -> bool:
        return self.rows < len(self.segments)

    @property
    def has_blocks(self) -> bool:
        return any(s.blocks for s in self.segments)

    @property
    def needs_custom_mask(self) -> bool:
        """False when plain causal attention over each row (with key padding) is already right."""
        return self.is_packed or self.has_blocks

    def index(self, trajectories: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(model row, position in the row) of each (trajectory index, position in the trajectory)."""
        row = torch.tensor([s.row for s in self.segments], dtype=torch.long, device=trajectories.device)
        start = torch.tensor([s.start for s in self.segments], dtype=torch.long, device=trajectories.device)
        return row[trajectories], start[trajectories] + positions


@dataclass
class MaskTables:
    """int64 [rows, padded width] each (see the module docstring); `length` is the model rows' width,
    the tables may run past it (to a multiple of a block size) with padding entries."""

    document: torch.Tensor
    key_group: torch.Tensor
    query_bits: torch.Tensor
    length: int

    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(document, key_group, query_bits): the arguments `allowed` takes before the indices."""
        return self.document, self.key_group, self.query_bits

    def to(self, device) -> "MaskTables":
        return MaskTables(self.document.to(device), self.key_group.to(device), self.query_bits.to(device),
                          self.length)


def mask_tables(layout: RowLayout, multiple: int = 1) -> MaskTables:
    """The per-token tables of `layout`, padded to a multiple of `multiple` tokens. Raises ValueError
    when a row's blocked key ranges overlap without being equal, or number more than 62."""
    width = -(-layout.width // multiple) * multiple
    document = -1 - np.tile(np.arange(width, dtype=np.int64), (layout.rows, 1))  # unique per padding token
    key_group = np.zeros((layout.rows, width), dtype=np.int64)
    query_bits = np.zeros((layout.rows, width), dtype=np.int64)
    groups: list[dict[tuple[int, int], int]] = [{} for _ in range(layout.rows)]
    for index, seg in enumerate(layout.segments):
        if seg.start + seg.length > layout.width:
            raise ValueError(f"trajectory {index} ends at {seg.start + seg.length}, past the row width {layout.width}")
        document[seg.row, seg.start : seg.start + seg.length] = index
        for block in seg.blocks:
            keys = (seg.start + block.k_start, seg.start + block.k_end)
            row_groups = groups[seg.row]
            if keys not in row_groups:
                for other in row_groups:
                    if keys[0] < other[1] and other[0] < keys[1]:
                        raise ValueError(f"blocked key ranges {other} and {keys} overlap in row {seg.row}")
                if len(row_groups) == MAX_KEY_GROUPS:
                    raise ValueError(f"row {seg.row} has more than {MAX_KEY_GROUPS} blocked key ranges")
                row_groups[keys] = len(row_groups) + 1
                key_group[seg.row, keys[0] : keys[1]] = row_groups[keys]
            query_bits[seg.row, seg.start + block.q_start : seg.start + block.q_end] |= 1 << row_groups[keys]
    return MaskTables(torch.from_numpy(document), torch.from_numpy(key_group), torch.from_numpy(query_bits),
                      layout.width)


def allowed(document: torch.Tensor, key_group: torch.Tensor, query_bits: torch.Tensor, b, q, k):
    """True where query q of row b may attend to key k: k <= q, the same trajectory, and no TDAM block
    between them (the tables of a `MaskTables`, passed as plain tensors so FlexAttention's compiler sees
    them as buffers). Index arguments are tensors that broadcast (or scalars inside FlexAttention)."""
    causal = k <= q
    same_document = document[b, q] == document[b, k]
    blocked = torch.bitwise_right_shift(query_bits[b, q], key_group[b, k]) & 1
    return causal & same_document & (blocked == 0)


def dense_mask(layout: RowLayout, slab_elements: int = 1 << 24) -> torch.Tensor:
    """bool [rows, 1, width, width]: the SDPA boolean mask of `layout` (True = may attend), filled in
    slabs of query rows so the int64 temporaries stay within `slab_elements` entries."""
    tables = mask_tables(layout)
    width = layout.width
    mask = torch.empty(layout.rows, 1, width, width, dtype=torch.bool)
    keys = torch.arange(width)[None, None, :]
    rows = torch.arange(layout.rows)[:, None, None]
    slab = max(1, slab_elements // max(1, layout.rows * width))
    for start in range(0, width, slab):
        queries = torch.arange(start, min(width, start + slab))[None, :, None]
        mask[:, 0, start : start + slab] = allowed(*tables.tensors, rows, queries, keys)
    return mask
