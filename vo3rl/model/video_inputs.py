"""Model inputs of a video from its reference: re-sample, patchify, and the timing the RoPE needs
(`vo3rl.video.timing`, shared with the rollout).

Frames are never carried along: `VideoMaterialiser` re-samples each `VideoSpan` from `ref`/`spec` with
the shared sampler (through a per-process DecodeCache) and checks that the vision-token count matches the
span the trajectory reserved.
"""
from __future__ import annotations

from dataclasses import dataclass

from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import sample_clip
from vo3rl.video.timing import second_per_grid
from vo3rl.video.types import Clip


@dataclass
class VideoInputs:
    """Patchified videos of one or more trajectories, in sequence order.
    `pixel_values` float [patches, C·T·14·14]; `grid_thw` long [videos, 3]; `second_per_grid` [videos]."""

    pixel_values: "object"
    grid_thw: "object"
    second_per_grid: list[float]


class VideoMaterialiser:
    """Re-samples and patchifies the videos of trajectories. `video_processor` is Qwen2.5-VL's
    (it normalises and patchifies; our frames are already at their final size, so it never resizes)."""

    def __init__(self, video_processor, cache: DecodeCache | None = None):
        self.video_processor = video_processor
        self.cache = cache if cache is not None else DecodeCache()

    def clip(self, span) -> Clip:
        """The Clip of a VideoSpan; raises ValueError when it does not reproduce the span's tokens."""
        clip = sample_clip(span.ref, span.spec, self.cache)
        if clip.n_vision_tokens != span.n_vision_tokens or tuple(clip.grid_thw) != tuple(span.grid_thw):
            raise ValueError(
                f"re-sampled video {span.ref.path} gives {clip.n_vision_tokens} vision tokens (grid "
                f"{clip.grid_thw}), the trajectory reserved {span.n_vision_tokens} (grid {span.grid_thw})")
        return clip

    def patchify(self, clips: list[Clip]) -> VideoInputs | None:
        if not clips:
            return None
        out = self.video_processor(videos=[c.frames for c in clips], return_tensors="pt", do_sample_frames=False)
        grid = out["video_grid_thw"]
        for clip, row in zip(clips, grid.tolist()):
            if tuple(row) != tuple(clip.grid_thw):
                raise ValueError(f"video processor resized a clip: grid {row}, expected {clip.grid_thw}")
        return VideoInputs(out["pixel_values_videos"], grid, [second_per_grid(c) for c in clips])

    def inputs(self, trajectories) -> tuple[VideoInputs | None, list[list[Clip]]]:
        """Videos of `trajectories` in order (trajectory, then position), and the clips per trajectory."""
        per_trajectory = [[self.clip(v) for v in sorted(t.videos, key=lambda v: v.start)] for t in trajectories]
        return self.patchify([c for clips in per_trajectory for c in clips]), per_trajectory
