"""Which frames a sampling request picks: pure arithmetic on the stream's frame times.

The window [t0, t1] (seconds, clipped to [0, duration]) is cut into n equal bins and each bin's
centre picks the frame whose start time is nearest (ties: the earlier frame). Bin centres rather
than bin starts keep the picks symmetric inside the window. n follows Qwen2.5-VL's rule: window
length x fps rounded to an even count, clamped to [min_frames, max_frames]; `num_frames` overrides
it. A window holding no more frames than asked gives each of them once (repeating frames only to
reach min_frames), so a short window or a slow stream does not pay tokens for duplicates. With
more frames than asked, a variable-rate stream can still map two bin centres to one frame: the
frame on screen at both times, reported with its true timestamp.
"""
from __future__ import annotations

import math

import numpy as np

from vo3rl.video.types import TEMPORAL_PATCH, SamplingSpec, VideoError


def _even_round(x: float) -> int:
    return TEMPORAL_PATCH * int(math.floor(x / TEMPORAL_PATCH + 0.5))


def check_spec(spec: SamplingSpec) -> None:
    """Raise ValueError for a request no video could satisfy (a configuration error)."""
    if spec.num_frames is None and not (math.isfinite(spec.fps) and spec.fps > 0):
        raise ValueError(f"fps must be positive, got {spec.fps}")
    if spec.num_frames is not None and spec.num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {spec.num_frames}")
    if not 1 <= spec.min_frames <= spec.max_frames:
        raise ValueError(f"need 1 <= min_frames <= max_frames, got {spec.min_frames}, {spec.max_frames}")
    if spec.max_tokens < 1 or spec.max_tokens_per_patch < 1:
        raise ValueError(f"token caps must be positive, got {spec.max_tokens}, {spec.max_tokens_per_patch}")


def clip_window(start_s: float | None, end_s: float | None, duration_s: float) -> tuple[float, float]:
    """The request's window clipped to [0, duration] seconds. Raises VideoError('window') when it
    is not finite, reversed, or lies wholly outside the video."""
    try:
        t0 = 0.0 if start_s is None else float(start_s)
        t1 = duration_s if end_s is None else float(end_s)
    except (TypeError, ValueError):
        raise VideoError("window", f"window [{start_s!r}, {end_s!r}] is not a pair of numbers") from None
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise VideoError("window", f"window [{t0}, {t1}] s is not finite")
    if t1 <= t0:
        raise VideoError("window", f"window [{t0}, {t1}] s is empty or reversed")
    if t0 >= duration_s or t1 <= 0:
        raise VideoError("window", f"window [{t0}, {t1}] s lies outside the video's [0, {duration_s}] s")
    return max(0.0, t0), min(duration_s, t1)


def frame_count(spec: SamplingSpec, window_s: float) -> int:
    """Frames a request asks for over a window of `window_s` seconds, before the window's own
    frame supply caps it."""
    wanted = spec.num_frames if spec.num_frames is not None else _even_round(window_s * spec.fps)
    return min(max(wanted, spec.min_frames), spec.max_frames)


def select_frames(timestamps_s: np.ndarray, duration_s: float, spec: SamplingSpec) -> np.ndarray:
    """Indices (int64, non-decreasing) of the frames a request picks.

    `timestamps_s` are the frames' start times in seconds, strictly increasing. Candidates are the
    frames on screen during the window: from the one showing at t0 to the last starting by t1.
    """
    check_spec(spec)
    t0, t1 = clip_window(spec.start_s, spec.end_s, duration_s)
    first = max(0, int(np.searchsorted(timestamps_s, t0, side="right")) - 1)
    last = int(np.searchsorted(timestamps_s, t1, side="right")) - 1
    candidates = np.arange(first, max(first, last) + 1, dtype=np.int64)
    n = frame_count(spec, t1 - t0)
    if len(candidates) <= n:
        # Every frame once; repeats only to reach min_frames, spread evenly.
        n = max(len(candidates), spec.min_frames)
        return candidates[(np.arange(n) * len(candidates)) // n]
    targets = t0 + (np.arange(n, dtype=np.float64) + 0.5) * ((t1 - t0) / n)
    times = timestamps_s[candidates]
    right = np.clip(np.searchsorted(times, targets, side="left"), 1, len(times) - 1)
    left = right - 1
    pick_right = (times[right] - targets) < (targets - times[left])
    return candidates[np.where(pick_right, right, left)]
