"""The timing of a sampled clip: its window in seconds and its frame rate, as the rollout and the
learner both need it (below both of them, so they cannot disagree).

THE ONE PLACE where the clip's frame rate for Qwen2.5-VL's temporal positions is decided. Qwen2.5-VL
spaces the temporal RoPE index of consecutive 2-frame patches by `tokens_per_second ×
second_per_grid_t`, with `second_per_grid_t = temporal_patch_size / fps`. Both sides must use the same
fps or the learner trains on other positions than the rollout generated with:

- here, `clip_fps(clip)` = frames / seconds of the clip's window (what the observation text tells the
  model: "Sampled at {fps} fps: …");
- the rollout gives vLLM `vllm_video_item(clip)`: the frames with metadata `fps = clip_fps(clip)`,
  `frames_indices = 0..T-1`, `total_num_frames = T`, so the HF processor inside vLLM computes
  `sampled_fps = T / T × fps = clip_fps(clip)`. (Passing the stream's own fps and frame indices
  would give the whole video's average rate, wrong for crops.)
"""
from __future__ import annotations

import numpy as np

from vo3rl.video.types import TEMPORAL_PATCH, Clip


def clip_window_s(clip) -> tuple[float, float]:
    """The window a Clip was sampled from, in seconds: its spec's bounds clipped to the video."""
    start = clip.spec.start_s if clip.spec.start_s is not None else 0.0
    end = clip.spec.end_s if clip.spec.end_s is not None else clip.duration_s
    return max(0.0, start), min(clip.duration_s, end)


def clip_fps(clip: Clip) -> float:
    """Frames per second of the clip's window (the spec's fps when the window is empty)."""
    start, end = clip_window_s(clip)
    if end - start > 0 and len(clip.frames) > 0:
        return len(clip.frames) / (end - start)
    return float(clip.spec.fps)


def second_per_grid(clip: Clip) -> float:
    """Seconds spanned by one 2-frame temporal patch of the clip."""
    return TEMPORAL_PATCH / clip_fps(clip)


def vllm_video_item(clip: Clip) -> tuple[np.ndarray, dict]:
    """`(frames uint8 [T,H,W,3], metadata)` for vLLM's `multi_modal_data["video"]`, timed as above."""
    n = len(clip.frames)
    fps = clip_fps(clip)
    metadata = {"fps": fps, "frames_indices": list(range(n)), "total_num_frames": n,
                "duration": n / fps, "video_backend": "decord", "do_sample_frames": False}
    return clip.frames, metadata
