"""The one sampler the rollout and the learner both call.

`sample_clip` picks frames by their real presentation times (see `timeline`), decodes them once
(optionally through a `DecodeCache`), and resizes them to the Qwen2.5-VL size the token budget
allows (see `resize`) with Pillow's integer-exact uint8 bicubic resampling. The frames that come
back are final: processors must not resize them again, so vLLM and Hugging Face see the same pixels.

Same input, same spec -> the same bytes, on every call: decoding is exact (H.264 and friends are
bit-exact by specification, frame folders are read losslessly), frame choice is arithmetic on
timestamps, and the resize is fixed-point. Across machines this rests on decord's bundled FFmpeg
converting YUV to RGB the same way, which holds for the same wheel on the same CPU family.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np
from PIL import Image

from vo3rl.video.cache import DecodeCache
from vo3rl.video.resize import frame_size_for_budget, patch_budget, vision_tokens
from vo3rl.video.sources import FrameSource, VideoInfo, file_key, open_source
from vo3rl.video.timeline import select_frames
from vo3rl.video.types import Clip, SamplingSpec, VideoRef

__all__ = ["sample_clip", "probe", "VideoInfo", "resize_frames"]
DECODE_CHUNK = 8  # frames per decode batch; the next batch decodes while this one is resized


def _source(ref: VideoRef, cache: DecodeCache | None) -> tuple[FrameSource, tuple | None]:
    if cache is None:
        return open_source(ref), None
    key = file_key(ref)
    return cache.source(key, lambda: open_source(ref)), key


def probe(ref: VideoRef, cache: DecodeCache | None = None) -> VideoInfo:
    """The stream's fps, frame count, duration (s) and size (px). Raises VideoError."""
    return _source(ref, cache)[0].info


def _resize(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    if frame.shape[:2] == (height, width):
        return frame
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BICUBIC))


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [T, height, width, 3]: Pillow bicubic on uint8 (fixed-point, so deterministic)."""
    out = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    _fill(out, range(len(frames)), frames)
    return out


def _raw_frames(source: FrameSource, key: tuple | None, cache: DecodeCache | None, indices: np.ndarray) -> list[np.ndarray]:
    """Frames as decoded: from the cache where held, the rest decoded in one batch (and kept)."""
    if cache is None:
        return list(source.decode(indices))
    frames = [cache.get(key, int(i), None) for i in indices]
    need = [int(i) for i, f in zip(indices, frames) if f is None]
    if need:
        decoded = dict(zip(need, source.decode(np.asarray(need, dtype=np.int64))))
        for i in need:
            decoded[i] = decoded[i].copy()  # owns its memory: a cached frame must not pin its batch
            cache.put(key, i, None, decoded[i])
        frames = [decoded[int(i)] if f is None else f for i, f in zip(indices, frames)]
    cache.record(hits=len(indices) - len(need), misses=len(need))
    return frames


def _fill(out: np.ndarray, positions, raw) -> None:
    """out[p] = raw frame resized to out's (height, width), for each position p."""
    height, width = out.shape[1:3]
    for pos, frame in zip(positions, raw):
        out[pos] = _resize(frame, height, width)


def _load(source: FrameSource, key: tuple | None, cache: DecodeCache | None, unique: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [len(unique), H, W, 3] at `size`. Resized frames come from the cache when held; the rest
    are decoded in chunks while a worker thread resizes the previous chunk (decord and Pillow both
    release the GIL), so resizing hides behind decoding."""
    out = np.empty((len(unique), *size, 3), dtype=np.uint8)
    missing = []
    for pos, index in enumerate(unique):
        hit = cache.get(key, int(index), size) if cache is not None else None
        if hit is None:
            missing.append(pos)
        else:
            out[pos] = hit
    if cache is not None and len(missing) < len(unique):
        cache.record(hits=len(unique) - len(missing), misses=0)
    chunks = [missing[i : i + DECODE_CHUNK] for i in range(0, len(missing), DECODE_CHUNK)]
    if len(chunks) == 1:
        _fill(out, chunks[0], _raw_frames(source, key, cache, unique[chunks[0]]))
    elif chunks:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = [pool.submit(_fill, out, chunk, _raw_frames(source, key, cache, unique[chunk])) for chunk in chunks]
            for job in pending:
                job.result()
    if cache is not None:
        for pos in missing:
            cache.put(key, int(unique[pos]), size, out[pos].copy())
    return out


def sample_clip(ref: VideoRef, spec: SamplingSpec, cache: DecodeCache | None = None) -> Clip:
    """Frames of `ref` inside `spec`'s window, resized to fit its token budget.

    Returns a Clip whose frames are uint8 [T, H, W, 3] with H, W multiples of 28, whose
    `timestamps_s` are the chosen frames' presentation times in seconds, and whose
    `n_vision_tokens` is ceil(T/2) * (H/28) * (W/28) <= spec.max_tokens.
    Raises VideoError (missing, empty, not_video, truncated, codec, bad_metadata, window) on bad
    input and ValueError on an impossible spec.
    """
    source, key = _source(ref, cache)
    info = source.info
    indices = select_frames(source.timestamps_s, info.duration_s, spec)
    budget = patch_budget(len(indices), spec.max_tokens, spec.min_tokens, spec.max_tokens_per_patch)
    height, width = frame_size_for_budget(info.height, info.width, budget)
    unique, inverse = np.unique(indices, return_inverse=True)
    with cache.lock if cache is not None else nullcontext():
        frames = _load(source, key, cache, unique, (height, width))
    if len(unique) < len(indices):
        frames = frames[inverse.reshape(-1)]
    return Clip(
        frames=frames,
        timestamps_s=source.timestamps_s[indices].astype(np.float64),
        frame_indices=indices.astype(np.int64),
        height=height,
        width=width,
        n_vision_tokens=vision_tokens(len(indices), height, width),
        video_fps=info.fps,
        duration_s=info.duration_s,
        spec=spec,
    )
