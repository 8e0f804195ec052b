"""Qwen2.5-VL's frame-size rules, written from their description.

A vision token covers 28x28 px (14-px patches merged 2x2), so frame sides are multiples of 28. A clip
is cut into temporal patches of 2 frames; every patch costs (H/28)*(W/28) tokens. The sampler asks
for a per-patch token budget and gets the largest 28-multiple size that keeps the aspect ratio and
fits it (Video-o3, methods.md section 1: `min(max_tokens // n_patches, max_tokens_per_patch)`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from vo3rl.video.types import PIXELS_PER_TOKEN_SIDE, TEMPORAL_PATCH

TOKEN_PIXELS = PIXELS_PER_TOKEN_SIDE * PIXELS_PER_TOKEN_SIDE  # 784 px per vision token
MAX_ASPECT_RATIO = 200  # Qwen refuses frames more elongated than this


def smart_resize(
    height: int,
    width: int,
    min_pixels: int,
    max_pixels: int,
    factor: int = PIXELS_PER_TOKEN_SIDE,
) -> tuple[int, int]:
    """The (height, width) in pixels Qwen2.5-VL resizes a `height` x `width` frame to.

    Rules: each side is rounded to the nearest multiple of `factor`, at least `factor` (a tie goes
    to the even multiple, as Qwen's reference code does with Python's round, so a raw frame given to
    Hugging Face's processor gets the same size as here). If the area then exceeds `max_pixels`,
    both sides shrink by the same ratio and round DOWN to multiples; if it falls below `min_pixels`,
    both grow by the same ratio and round UP. Raises ValueError for empty frames or an aspect ratio
    above 200.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"aspect ratio of {height}x{width} exceeds {MAX_ASPECT_RATIO}")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        shrink = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / shrink / factor) * factor)
        w = max(factor, math.floor(width / shrink / factor) * factor)
    elif h * w < min_pixels:
        grow = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * grow / factor) * factor
        w = math.ceil(width * grow / factor) * factor
    return h, w


def n_temporal_patches(n_frames: int) -> int:
    """Temporal patches of 2 frames (an odd last frame still costs a full patch)."""
    return -(-n_frames // TEMPORAL_PATCH)


@dataclass(frozen=True)
class PatchBudget:
    """Token bounds for one 2-frame temporal patch, in LLM vision tokens."""

    min_tokens: int
    max_tokens: int


def patch_budget(n_frames: int, max_tokens: int, min_tokens: int, max_tokens_per_patch: int) -> PatchBudget:
    """Split a clip's token budget over its temporal patches.

    Cap per patch: `min(max_tokens // n_patches, max_tokens_per_patch)` (at least 1 token); floor per
    patch: `ceil(min_tokens / n_patches)`, never above the cap so the clip's maximum always holds.
    """
    if n_frames <= 0:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    patches = n_temporal_patches(n_frames)
    cap = max(1, min(max_tokens // patches, max_tokens_per_patch))
    floor = min(cap, -(-max(0, min_tokens) // patches))
    return PatchBudget(min_tokens=floor, max_tokens=cap)


def frame_size_for_budget(height: int, width: int, budget: PatchBudget) -> tuple[int, int]:
    """(height, width) in pixels, multiples of 28, for a source frame under a per-patch budget.

    One patch of 2 frames costs as many tokens as one frame has 28x28 cells, so the pixel bounds of
    smart_resize are the per-patch token bounds times 784. Growing to the floor rounds each side up,
    which can overshoot the cap; the cap wins then (the clip's maximum is the promise that matters).
    """
    max_pixels = budget.max_tokens * TOKEN_PIXELS
    h, w = smart_resize(height, width, budget.min_tokens * TOKEN_PIXELS, max_pixels)
    if h * w > max_pixels:
        h, w = smart_resize(height, width, 0, max_pixels)
    return h, w


def vision_tokens(n_frames: int, height: int, width: int) -> int:
    """LLM vision tokens of a clip: ceil(T / 2) * (H / 28) * (W / 28)."""
    return n_temporal_patches(n_frames) * (height // PIXELS_PER_TOKEN_SIDE) * (width // PIXELS_PER_TOKEN_SIDE)
