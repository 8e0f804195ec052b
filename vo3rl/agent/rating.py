"""The evidence of one sampled Open-o3 answer, for confidence-aware test-time scaling (methods.md
section 8): every claimed box cropped from the frame nearest its timestamp, and the turn that asks the
same model how relevant those crops are to the question (0, 1 or 2; `vo3rl.agent.voting` weighs it).

Boxes are read in pixels of the frames the answer was written about (the clip the model was shown,
already resized), so no rescaling happens here. A box is clamped to its frame; one left empty, or on
a claim without a usable time, is no crop at all. Past `MAX_CROPS` crops nobody is asked (the answer
weighs the fallback weight), so the scan stops there.

The crops travel as ONE video, each crop one 2-frame temporal patch on a square canvas: an Open-o3
engine admits one video per prompt (`RolloutConfig.engine_args`), and one video of K small patches
costs K x (side / 28)^2 vision tokens, well inside what the engine profiled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vo3rl.agent.parse import parse_claims
from vo3rl.agent.prompts import fill, format_options
from vo3rl.agent.render import TrajectoryBuilder
from vo3rl.agent.voting import MAX_CROPS
from vo3rl.config.prompts import PromptTemplates
from vo3rl.data.schema import Sample
from vo3rl.video.resize import vision_tokens
from vo3rl.video.sampler import resize_frames
from vo3rl.video.types import TEMPORAL_PATCH, Clip, SamplingSpec

# Each crop is letterboxed into an 84x84 px square: 9 vision tokens, enough to tell what the box holds,
# and ten crops (90 tokens) still cost less context than the answer's own video.
CROP_SIDE_PX = 84
RATING_MAX_NEW_TOKENS = 8  # the reply is one digit; a few tokens leave room for "Rating: 2"


@dataclass(frozen=True)
class Crop:
    """One evidence crop: `pixels` uint8 [h, w, 3] cut from frame `frame_index` (at `time_s`
    seconds) of the answer's clip; `box` (x1, y1, x2, y2) the integer pixel bounds cut, x2/y2 exclusive."""

    name: str
    pixels: np.ndarray
    time_s: float
    frame_index: int
    box: tuple[int, int, int, int]


def nearest_frame(timestamps_s: np.ndarray, time_s: float) -> int:
    """Index of the frame whose timestamp (seconds) is closest to `time_s`; the earlier one on a tie."""
    return int(np.argmin(np.abs(np.asarray(timestamps_s, dtype=np.float64) - time_s)))


def clamp_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int] | None:
    """`box` (pixels) widened to whole pixels and clamped to a `width` x `height` frame; None when
    nothing of it is left."""
    x1, y1 = (max(0, min(limit, math.floor(v))) for v, limit in ((box[0], width), (box[1], height)))
    x2, y2 = (max(0, min(limit, math.ceil(v))) for v, limit in ((box[2], width), (box[3], height)))
    if x2 <= x1 or y2 <= y1:
        return None
    return (x1, y1, x2, y2)


def evidence_crops(answer_text: str | bytes | None, clip: Clip, limit: int = MAX_CROPS) -> list[Crop]:
    """The crops of every claim in `answer_text` whose time (seconds) lies on the clip's video and
    whose box keeps some area inside the frame, in the order written. At most `limit + 1` are cut:
    more than `limit` means "too many" whatever the exact count."""
    crops: list[Crop] = []
    if len(clip.frames) == 0:
        return crops
    height, width = clip.frames.shape[1:3]
    for claim in parse_claims(answer_text).claims:
        if claim.time_s is None or not 0.0 <= claim.time_s <= clip.duration_s:
            continue
        index = nearest_frame(clip.timestamps_s, claim.time_s)
        for box in claim.boxes:
            bounds = clamp_box(box, width, height)
            if bounds is None:
                continue
            x1, y1, x2, y2 = bounds
            crops.append(Crop(claim.name, clip.frames[index, y1:y2, x1:x2], float(claim.time_s), index, bounds))
            if len(crops) > limit:
                return crops
    return crops


def letterbox(pixels: np.ndarray, side: int = CROP_SIDE_PX) -> np.ndarray:
    """uint8 [side, side, 3]: `pixels` scaled to fit the square, aspect ratio kept, centred on black."""
    h, w = pixels.shape[:2]
    scale = side / max(h, w)
    nh, nw = max(1, min(side, round(h * scale))), max(1, min(side, round(w * scale)))
    canvas = np.zeros((side, side, 3), dtype=np.uint8)
    top, left = (side - nh) // 2, (side - nw) // 2
    canvas[top:top + nh, left:left + nw] = resize_frames(np.ascontiguousarray(pixels)[None], nh, nw)[0]
    return canvas


def crops_clip(crops: list[Crop], side: int = CROP_SIDE_PX) -> Clip:
    """The crops as one video the engine takes: each letterboxed into a `side`-px square (a multiple
    of 28) and shown twice, so crop k is temporal patch k; a still per second at 2 fps."""
    if not crops or side % 28:
        raise ValueError(f"crops_clip needs crops and a side that is a multiple of 28, got {len(crops)}, {side}")
    frames = np.repeat(np.stack([letterbox(crop.pixels, side) for crop in crops]), TEMPORAL_PATCH, axis=0)
    n = len(frames)
    return Clip(frames=frames, timestamps_s=np.arange(n) / 2.0,
                frame_indices=np.repeat([crop.frame_index for crop in crops], TEMPORAL_PATCH).astype(np.int64),
                height=side, width=side, n_vision_tokens=vision_tokens(n, side, side), video_fps=2.0,
                duration_s=float(len(crops)),
                spec=SamplingSpec(start_s=0.0, end_s=float(len(crops)), fps=2.0, num_frames=n, min_tokens=0))


def rating_text(sample: Sample, templates: PromptTemplates) -> str:
    """The rating instruction after the crops: `tts_rating` with the question (and its options)."""
    question = sample.question + (f"\nOptions:\n{format_options(sample.options)}" if sample.options else "")
    return fill(templates.tts_rating, question=question)


def rating_context(sample: Sample, crops: list[Crop], tokenizer, templates: PromptTemplates) -> tuple[list[int], list[Clip]]:
    """The prompt of a rating turn (token ids, video pads expanded) and its one clip: the Open-o3
    system message, then one user turn holding the crops' video and the rating instruction."""
    clip = crops_clip(crops)
    builder = TrajectoryBuilder(tokenizer, sample, templates, "open_o3")
    builder.add_prompt(clip, rating_text(sample, templates), templates.open_o3_system)
    return builder.build().token_ids.tolist(), [clip]
