"""Task-Decoupled Attention Masking (methods.md section 2): which query tokens may not see which video.

A trajectory's mask is a short list of blocks — (query range, key range) pairs in token indices —
removed from the ordinary causal mask:

- rule (a): the tokens of the LAST `<answer>…</answer>` may not attend to the tokens strictly inside
  video 0 (the global view);
- rule (b): the tokens of every `<grounding>…</grounding>` after the first may not attend to the tokens
  of the crop videos (videos 1..K) that come before it.

Only sequences with more than one video are masked. A video's blocked keys are its `<|video_pad|>` run
(`VideoSpan.start:end`), never the vision start/end markers; `<think>` and plain text are never blocked.
Tag spans come from the Trajectory (`TagTokens`), which found them in the decoded assistant text, so no
token id is hard-coded here. A batch's attention masks are made from the blocks in `vo3rl.train.masks`
(the SDPA boolean mask) and `vo3rl.train.flex_mask` (the FlexAttention block mask); `tdam_mask` here is
the plain single-row reference they are tested against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Block:
    """Queries [q_start, q_end) may not attend to keys [k_start, k_end) (token indices)."""

    q_start: int
    q_end: int
    k_start: int
    k_end: int
    rule: str  # "answer" (rule a) or "grounding" (rule b)


def tdam_blocks(trajectory) -> list[Block]:
    """The TDAM blocks of a `vo3rl.agent.trajectory.Trajectory` (empty with fewer than two videos)."""
    videos = sorted(trajectory.videos, key=lambda v: v.start)
    if len(videos) < 2:
        return []
    tags = sorted(trajectory.tags, key=lambda t: t.start)
    blocks = []
    answers = [t for t in tags if t.tag == "answer"]
    if answers:
        last = answers[-1]
        blocks.append(Block(last.start, last.end, videos[0].start, videos[0].end, "answer"))
    groundings = [t for t in tags if t.tag == "grounding"]
    for span in groundings[1:]:
        for crop in videos[1:]:
            if crop.end <= span.start:
                blocks.append(Block(span.start, span.end, crop.start, crop.end, "grounding"))
    return blocks


def causal_mask(length: int, valid: int | None = None) -> np.ndarray:
    """bool [L, L]: True where query i may attend to key j: j <= i and j a real token (j < `valid`).
    Padding queries also see themselves, so no attention row is empty (an all-False row gives NaN in
    SDPA); their outputs are never scored."""
    valid = length if valid is None else valid
    mask = np.tril(np.ones((length, length), dtype=bool))
    mask[:, valid:] = False
    np.fill_diagonal(mask, True)
    return mask


def tdam_mask(length: int, blocks: Sequence[Block], valid: int | None = None) -> np.ndarray:
    """bool [L, L]: the causal (and padding) mask with every block removed."""
    mask = causal_mask(length, valid)
    for b in blocks:
        mask[b.q_start : b.q_end, b.k_start : b.k_end] = False
    return mask
