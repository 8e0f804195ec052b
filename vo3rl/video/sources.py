"""Opening a video: an mp4 (any container decord reads) or a folder of frames, as a `FrameSource`.

Frame times come from the stream's own presentation timestamps; the container's declared rate and
duration are reported (VideoInfo.declared_*) but never used, since they can disagree with the stream.
`VideoRef.frame_fps` is used for frame folders only.

A source knows every frame's presentation time (seconds) and decodes frames by index at the
stream's own resolution. Every failure becomes a `VideoError` with a reason tag:
missing, empty, not_video, truncated, codec, bad_metadata.
"""
from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vo3rl.video.types import VideoError, VideoRef

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Container signatures: bytes at an offset that say "this is meant to be a video". A file that has
# one but will not open is damaged (truncated); one without is not a video at all.
_CONTAINER_MAGIC: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"), (4, b"skip"),  # mp4 / mov
    (0, b"\x1a\x45\xdf\xa3"),  # matroska / webm
    (0, b"RIFF"),  # avi
    (0, b"FLV"),
    (0, b"OggS"),
    (0, b"\x00\x00\x01\xba"),  # mpeg program stream
    (0, b"\x30\x26\xb2\x75"),  # asf / wmv
)
# Timestamps are rounded to whole microseconds: decord reports float32 seconds, and rounding makes
# 0.1 read as 0.1 while staying far below any frame interval.
TIMESTAMP_DECIMALS = 6


@dataclass(frozen=True)
class VideoInfo:
    """What the stream says about itself: frames per second (average over the stream's
    timestamps), frame count, duration in seconds (end of the last frame), frame size in pixels,
    and the container's own declared values, which may disagree."""

    fps: float
    n_frames: int
    duration_s: float
    width: int
    height: int
    declared_fps: float | None = None
    declared_duration_s: float | None = None


class FrameSource(Protocol):
    info: VideoInfo
    timestamps_s: np.ndarray  # float64 [n_frames], presentation time of each frame's start

    def decode(self, indices: np.ndarray) -> np.ndarray:
        """uint8 [len(indices), H, W, 3] RGB frames at the stream's resolution."""
        ...


def file_key(ref: VideoRef) -> tuple:
    """Identity of a video's bytes for caching: real path, modification time (ns), size (bytes;
    for a folder, its entry count) and the folder's frame rate. Raises VideoError('missing')."""
    path = os.path.realpath(ref.path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise VideoError("missing", f"{ref.path}: {exc.strerror or exc}") from None
    size = len(os.listdir(path)) if os.path.isdir(path) else st.st_size
    return (path, st.st_mtime_ns, size, ref.frame_fps)


def open_source(ref: VideoRef) -> FrameSource:
    """Open `ref` for decoding. Raises VideoError with a reason tag on any bad input."""
    if not os.path.exists(ref.path):
        raise VideoError("missing", f"{ref.path}: no such file or folder")
    if os.path.isdir(ref.path):
        return FolderSource(ref)
    if os.path.getsize(ref.path) == 0:
        raise VideoError("empty", f"{ref.path}: zero-length file")
    return DecordSource(ref.path)


def _natural_key(name: str) -> list:
    # "frame_2.jpg" before "frame_10.jpg": compare digit runs as numbers.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _has_container_magic(path: str) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(16)
    return any(head[off : off + len(magic)] == magic for off, magic in _CONTAINER_MAGIC)


def _video_codec_name(path: str) -> str | None:
    """The first video stream's codec per PyAV, or None when PyAV cannot open the file either."""
    try:
        import av

        with av.open(path) as container:
            streams = container.streams.video
            return streams[0].codec_context.name if streams else ""
    except Exception:  # noqa: BLE001 - any failure here only means "PyAV cannot read it either"
        return None


def _open_failure(path: str, exc: Exception) -> VideoError:
    """Turn decord's open error into a reason: a stream decord has no decoder for is `codec`, a
    file with a container signature that will not open is `truncated`, anything else `not_video`."""
    codec = _video_codec_name(path)
    if codec:
        if "video stream" in str(exc):
            return VideoError("codec", f"{path}: no decoder for its {codec!r} video stream")
        return VideoError("truncated", f"{path}: {codec} stream cannot be read ({_short(exc)})")
    if codec == "":
        return VideoError("not_video", f"{path}: container has no video stream")
    if _has_container_magic(path):
        return VideoError("truncated", f"{path}: video container is damaged or cut short ({_short(exc)})")
    return VideoError("not_video", f"{path}: not a video file ({_short(exc)})")


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text[-200:]


def _as_numpy(batch) -> np.ndarray:
    # decord returns its own NDArray, or a torch tensor when someone set the torch bridge.
    return np.asarray(batch.asnumpy() if hasattr(batch, "asnumpy") else batch.numpy())


class DecordSource:
    """An mp4 (or other container) read with decord. Timestamps are the stream's presentation
    times, so variable-frame-rate files are timed correctly."""

    def __init__(self, path: str):
        import decord

        self.path = path
        try:
            self._reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
            n = len(self._reader)
            spans = self._reader.get_frame_timestamp(np.arange(n)) if n else np.zeros((0, 2))
            declared_fps = float(self._reader.get_avg_fps())
        except VideoError:
            raise
        except Exception as exc:  # noqa: BLE001 - decord raises RuntimeError or its own DECORDError
            raise _open_failure(path, exc) from None
        if n == 0:
            raise VideoError("empty", f"{path}: the video stream has no frames")
        spans = np.round(np.asarray(spans, dtype=np.float64).reshape(n, 2), TIMESTAMP_DECIMALS)
        starts = spans[:, 0]
        if not np.all(np.isfinite(starts)) or np.any(np.diff(starts) <= 0):
            raise VideoError("bad_metadata", f"{path}: frame timestamps are not strictly increasing")
        duration = float(max(spans[-1, 1], starts[-1]))
        if duration <= 0:
            raise VideoError("bad_metadata", f"{path}: stream duration is {duration} s")
        self.timestamps_s = starts
        height, width = self._frame_shape()
        self.info = VideoInfo(
            fps=n / duration,
            n_frames=n,
            duration_s=duration,
            width=width,
            height=height,
            declared_fps=declared_fps if math.isfinite(declared_fps) and declared_fps > 0 else None,
            declared_duration_s=n / declared_fps if declared_fps > 0 else None,
        )

    def _frame_shape(self) -> tuple[int, int]:
        # decord exposes the decoded size only through a frame; the first index is cheap after open.
        try:
            shape = self._reader.get_batch([0]).shape
        except Exception as exc:  # noqa: BLE001
            raise VideoError("truncated", f"{self.path}: first frame cannot be decoded ({_short(exc)})") from None
        return int(shape[1]), int(shape[2])

    def decode(self, indices: np.ndarray) -> np.ndarray:
        try:
            frames = _as_numpy(self._reader.get_batch([int(i) for i in indices]))
        except Exception as exc:  # noqa: BLE001
            raise VideoError("truncated", f"{self.path}: frames cannot be decoded ({_short(exc)})") from None
        return np.ascontiguousarray(frames, dtype=np.uint8)


class FolderSource:
    """A folder of image files, one per frame, in natural name order, at `ref.frame_fps`."""

    def __init__(self, ref: VideoRef):
        fps = ref.frame_fps
        if fps is None or not math.isfinite(fps) or fps <= 0:
            raise VideoError("bad_metadata", f"{ref.path}: a frame folder needs a positive frame_fps, got {fps}")
        names = sorted(
            (n for n in os.listdir(ref.path) if n.lower().endswith(IMAGE_SUFFIXES)), key=_natural_key
        )
        if not names:
            raise VideoError("empty", f"{ref.path}: folder holds no {'/'.join(IMAGE_SUFFIXES)} frames")
        self.path = ref.path
        self._files = [os.path.join(ref.path, n) for n in names]
        self.timestamps_s = np.round(np.arange(len(names), dtype=np.float64) / fps, TIMESTAMP_DECIMALS)
        height, width = self._read(0).shape[:2]
        self.info = VideoInfo(
            fps=float(fps), n_frames=len(names), duration_s=len(names) / fps, width=width, height=height,
            declared_fps=float(fps), declared_duration_s=len(names) / fps,
        )

    def _read(self, index: int) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(self._files[index]) as img:
                return np.asarray(img.convert("RGB"), dtype=np.uint8)
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad images
            raise VideoError("not_video", f"{self._files[index]}: unreadable frame image ({_short(exc)})") from None

    def decode(self, indices: np.ndarray) -> np.ndarray:
        frames = [self._read(int(i)) for i in indices]
        shape = frames[0].shape
        for i, frame in zip(indices, frames):
            if frame.shape != shape:
                raise VideoError(
                    "bad_metadata", f"{self._files[int(i)]}: frame size {frame.shape[:2]} differs from {shape[:2]}"
                )
        return np.stack(frames)
