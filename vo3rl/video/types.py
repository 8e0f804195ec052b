"""The values that describe a video sampling. They travel between processes; pixels never do."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

# Qwen2.5-VL: 14 px patches merged 2x2, so one vision token covers 28x28 px; frames are grouped in
# temporal patches of 2.
PIXELS_PER_TOKEN_SIDE = 28
TEMPORAL_PATCH = 2


@dataclass(frozen=True)
class VideoRef:
    """Where a video lives. `path` is an mp4 (any container decord reads) or a folder of frames;
    a folder needs `frame_fps` (frames per second of the folder's sequence)."""

    path: str
    frame_fps: float | None = None


@dataclass(frozen=True)
class SamplingSpec:
    """A request for frames: a window of the ORIGINAL timeline, a rate and a vision-token budget.

    Times in seconds, `None` meaning the video's start / end. Token counts are LLM vision tokens
    (after the 2x2 merge): `max_tokens` for the whole clip, `min_tokens` the floor for the whole clip,
    `max_tokens_per_patch` the cap for one 2-frame temporal patch.
    """

    start_s: float | None = None
    end_s: float | None = None
    fps: float = 2.0
    max_frames: int = 768
    max_tokens: int = 16384
    min_tokens: int = 512
    max_tokens_per_patch: int = 768
    min_frames: int = 2
    # Sample exactly this many frames uniformly over the window instead of at `fps` (Open-o3: 16).
    num_frames: int | None = None

    def window(self, start_s: float | None, end_s: float | None) -> "SamplingSpec":
        return replace(self, start_s=start_s, end_s=end_s)


@dataclass
class Clip:
    """Frames ready for the vision encoder: already resized, so processors must not resize again."""

    frames: np.ndarray  # uint8 [T, H, W, 3]
    timestamps_s: np.ndarray  # float64 [T], seconds on the original timeline
    frame_indices: np.ndarray  # int64 [T], indices into the decoded stream (or the folder's sorted files)
    height: int  # pixels, multiple of 28
    width: int  # pixels, multiple of 28
    n_vision_tokens: int  # ceil(T / 2) * (H / 28) * (W / 28)
    video_fps: float  # the stream's average frame rate
    duration_s: float  # the video's duration
    spec: SamplingSpec = field(default_factory=SamplingSpec)

    @property
    def grid_thw(self) -> tuple[int, int, int]:
        """Qwen2.5-VL's `video_grid_thw`: temporal patches and 14-px patches per side (pre-merge)."""
        t = -(-len(self.frames) // TEMPORAL_PATCH)
        return (t, self.height // 14, self.width // 14)

    @property
    def start_s(self) -> float:
        return float(self.timestamps_s[0]) if len(self.timestamps_s) else 0.0

    @property
    def end_s(self) -> float:
        return float(self.timestamps_s[-1]) if len(self.timestamps_s) else 0.0


class VideoError(Exception):
    """A video that cannot be sampled as asked. `reason` is a short machine-readable tag
    (missing, empty, not_video, truncated, codec, bad_metadata, window, escapes_root)."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
