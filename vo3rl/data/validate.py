"""Checking a sample against its video: the row's metadata must agree with the stream."""
from __future__ import annotations

from vo3rl.data.schema import Sample, SampleError
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import VideoInfo, probe
from vo3rl.video.types import VideoError

DURATION_TOLERANCE_S = 1.0
DURATION_TOLERANCE_FRACTION = 0.02


def check_sample_video(sample: Sample, cache: DecodeCache | None = None) -> VideoInfo:
    """Probe the sample's video and return its VideoInfo.

    Raises SampleError naming the sample: with the VideoError's reason when the video cannot be
    opened; `bad_metadata` when the row's duration differs from the stream's by more than
    max(1 s, 2%); `bad_field` when a clue or key frame starts after the video ends.
    """
    try:
        info = probe(sample.video, cache)
    except VideoError as err:
        raise SampleError(sample.id, f"{err.reason}: {str(err).split(': ', 1)[-1]}") from None
    tolerance = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_FRACTION * info.duration_s)
    if sample.duration_s is not None and abs(sample.duration_s - info.duration_s) > tolerance:
        raise SampleError(
            sample.id, f"bad_metadata: row says {sample.duration_s:.3f} s, the stream runs {info.duration_s:.3f} s"
        )
    late = [s for s, _ in sample.clues if s > info.duration_s + tolerance]
    late += [kf.time_s for kf in sample.key_frames if kf.time_s > info.duration_s + tolerance]
    if late:
        raise SampleError(sample.id, f"bad_field: evidence at {late[0]:.3f} s is past the video's end ({info.duration_s:.3f} s)")
    return info
