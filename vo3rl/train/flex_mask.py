"""A FlexAttention `BlockMask` of a micro-batch's `RowLayout` (TDAM blocks, padding, packed documents).

The mask_mod is `vo3rl.train.masks.allowed` over the per-token tables, so FlexAttention and the SDPA
boolean mask cannot disagree on what is allowed. The block sparsity (which 128×128 tiles are empty,
partial or full) is counted here in slabs of query rows: `create_block_mask` run eagerly would build the
whole [rows, L, L] mask at once (1 GiB of booleans per 32k-token row), and compiled it recompiles for
every new length. A slab holds at most `slab_elements` entries.
"""
from __future__ import annotations

import torch

from vo3rl.train.masks import MaskTables, RowLayout, allowed, mask_tables

BLOCK = 128  # FlexAttention's default sparse block size (tokens per side of a tile)


def _ordered(tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(count, column indices with the marked tiles first) per tile row, as BlockMask stores them."""
    tiles = tiles.to(torch.int32)
    counts = tiles.sum(-1, dtype=torch.int32)
    indices = torch.argsort(tiles, dim=-1, descending=True, stable=True).to(torch.int32)
    return counts.contiguous(), indices.contiguous()


def tile_counts(tables: MaskTables, block: int = BLOCK, slab_elements: int = 1 << 24) -> torch.Tensor:
    """int32 [rows, 1, q tiles, kv tiles]: allowed entries per tile (tables padded to `block`)."""
    rows, width = tables.document.shape
    if width % block:
        raise ValueError(f"mask tables of width {width} are not padded to the block size {block}")
    tiles = width // block
    device = tables.document.device
    counts = torch.empty(rows, 1, tiles, tiles, dtype=torch.int32, device=device)
    keys = torch.arange(width, device=device)[None, None, :]
    row_index = torch.arange(rows, device=device)[:, None, None]
    slab = max(block, (slab_elements // max(1, rows * width)) // block * block)
    for start in range(0, width, slab):
        stop = min(width, start + slab)
        queries = torch.arange(start, stop, device=device)[None, :, None]
        grid = allowed(*tables.tensors, row_index, queries, keys)  # [rows, slab, width]
        grid = grid.view(rows, (stop - start) // block, block, tiles, block)
        counts[:, 0, start // block : stop // block] = grid.sum((2, 4), dtype=torch.int32)
    return counts


def flex_block_mask(layout: RowLayout, device, block: int = BLOCK):
    """The BlockMask of `layout` on `device` for sequences of `layout.width` tokens."""
    from torch.nn.attention.flex_attention import BlockMask

    tables = mask_tables(layout, multiple=block).to(device)
    counts = tile_counts(tables, block)
    full = counts == block * block
    partial = (counts > 0) & ~full
    kv_num, kv_indices = _ordered(partial)
    full_num, full_indices = _ordered(full)

    document, key_group, query_bits = tables.tensors

    def mask_mod(b, h, q, k):
        return allowed(document, key_group, query_bits, b, q, k)

    return BlockMask.from_kv_blocks(kv_num, kv_indices, full_num, full_indices, BLOCK_SIZE=block,
                                    mask_mod=mask_mod, seq_lengths=(layout.width, layout.width))
