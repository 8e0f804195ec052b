"""A per-process decode-once cache for the sampler.

What is cached, and why:
- The opened source (decord reader or frame-folder listing) with its timestamp index, a few per
  process (LRU by count). Re-opening costs a container parse plus decoding the first frame, so a
  crop of a video already open skips that.
- Frames, keyed by (video, frame index, size), LRU bounded by a memory budget in bytes: each
  sampled frame as decoded (size None) and as resized for the clip that asked ((height, width)).
  This is where the time goes: a crop decodes every frame from the nearest keyframe up to its last
  sampled frame, and then resizes the sampled ones. The rollout's G trajectories of one sample all
  start from the same global view, their crops overlap, and the learner re-materialises exactly
  the clips the rollout used; with both kept, a repeated clip costs a copy, a clip at another size
  over the same frames costs a resize, and only new frames are decoded (the benchmark measures five
  crops of one 10-minute video).

Keys are (real path, mtime in ns, size in bytes or a folder's entry count, frame_fps), so a file
rewritten in place is decoded afresh. Thread-safe: one lock guards the cache and decoding (a decord
reader must not be used by two threads at once).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from vo3rl.video.sources import FrameSource

DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB of decoded frames
DEFAULT_MAX_SOURCES = 8


@dataclass
class CacheStats:
    """Counters since creation: sampled frames served from memory / decoded, sources reused /
    opened, cached frames evicted to stay under the byte budget."""

    frame_hits: int = 0
    frame_misses: int = 0
    source_hits: int = 0
    source_opens: int = 0
    evictions: int = 0


class DecodeCache:
    """LRU of opened sources (by count) and frames (by bytes). See the module docstring.
    Callers hold `lock` around a whole clip's lookups, decoding and stores."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_sources: int = DEFAULT_MAX_SOURCES):
        if max_bytes < 0 or max_sources < 1:
            raise ValueError(f"need max_bytes >= 0 and max_sources >= 1, got {max_bytes}, {max_sources}")
        self.max_bytes = max_bytes
        self.max_sources = max_sources
        self.stats = CacheStats()
        self._sources: OrderedDict[tuple, FrameSource] = OrderedDict()
        self._frames: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self.lock = threading.RLock()

    @property
    def nbytes(self) -> int:
        """Bytes of frames held now."""
        return self._bytes

    def source(self, key: tuple, open_fn: Callable[[], FrameSource]) -> FrameSource:
        """The open source for `key`, opening it with `open_fn` on a miss."""
        with self.lock:
            src = self._sources.get(key)
            if src is not None:
                self._sources.move_to_end(key)
                self.stats.source_hits += 1
                return src
            src = open_fn()
            self.stats.source_opens += 1
            self._sources[key] = src
            while len(self._sources) > self.max_sources:
                self._sources.popitem(last=False)
            return src

    def get(self, key: tuple, index: int, size: tuple[int, int] | None) -> np.ndarray | None:
        """The cached frame `index` of video `key` at `size` ((height, width) px; None: as decoded)."""
        with self.lock:
            frame = self._frames.get((key, index, size))
            if frame is not None:
                self._frames.move_to_end((key, index, size))
            return frame

    def put(self, key: tuple, index: int, size: tuple[int, int] | None, frame: np.ndarray) -> None:
        """Keep `frame` (store an array that owns its memory, not a view of a batch)."""
        with self.lock:
            old = self._frames.pop((key, index, size), None)
            if old is not None:
                self._bytes -= old.nbytes
            self._put((key, index, size), frame)

    def record(self, hits: int, misses: int) -> None:
        """Count frames served from memory (`hits`) and decoded (`misses`)."""
        self.stats.frame_hits += hits
        self.stats.frame_misses += misses

    def _put(self, frame_key: tuple, frame: np.ndarray) -> None:
        if frame.nbytes > self.max_bytes:
            return
        self._frames[frame_key] = frame
        self._bytes += frame.nbytes
        while self._bytes > self.max_bytes:
            _, old = self._frames.popitem(last=False)
            self._bytes -= old.nbytes
            self.stats.evictions += 1

    def clear(self) -> None:
        """Drop every source and frame."""
        with self.lock:
            self._sources.clear()
            self._frames.clear()
            self._bytes = 0
