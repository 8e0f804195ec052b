"""The decode-once cache: repeats are served from memory, the byte budget holds, rewritten files
are decoded afresh, and cached results equal uncached ones."""
from __future__ import annotations

import os

import numpy as np
import pytest
from video_fixtures import index_of, write_cfr_mp4

from vo3rl.video.budgets import crop_spec, preset
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import VideoError, VideoRef


@pytest.fixture()
def video(tmp_path):
    # 8 fps, 32 frames, 4.0 s, 64x48: frame k at k/8 s, so bin centres never tie.
    return write_cfr_mp4(str(tmp_path / "v.mp4"), n_frames=32, fps=8)


def test_repeated_crop_decodes_nothing_new(video):
    cache = DecodeCache()
    ref, spec = VideoRef(video), crop_spec("fine", 1.0, 3.0)
    first = sample_clip(ref, spec, cache)
    # [1, 3] at 2 fps: 4 frames, all decoded once.
    assert (cache.stats.frame_misses, cache.stats.frame_hits, cache.stats.source_opens) == (4, 0, 1)
    second = sample_clip(ref, spec, cache)
    assert (cache.stats.frame_misses, cache.stats.frame_hits, cache.stats.source_opens) == (4, 4, 1)
    assert cache.stats.source_hits == 1
    assert np.array_equal(first.frames, second.frames)
    assert np.array_equal(first.frames, sample_clip(ref, spec).frames)


def test_overlapping_crop_decodes_only_new_frames(video):
    cache = DecodeCache()
    ref = VideoRef(video)
    a = sample_clip(ref, crop_spec("coarse", 0.0, 2.0), cache)  # centres 0.25 .. 1.75 -> frames 2, 6, 10, 14
    b = sample_clip(ref, crop_spec("coarse", 1.0, 3.0), cache)  # centres 1.25 .. 2.75 -> frames 10, 14, 18, 22
    assert a.frame_indices.tolist() == [2, 6, 10, 14] and b.frame_indices.tolist() == [10, 14, 18, 22]
    assert (cache.stats.frame_misses, cache.stats.frame_hits) == (6, 2)


def test_same_frames_at_another_size_are_resized_not_decoded(video):
    cache = DecodeCache()
    ref = VideoRef(video)
    small = sample_clip(ref, crop_spec("fine", 1.0, 3.0, min_tokens=0), cache)
    fine = sample_clip(ref, crop_spec("fine", 1.0, 3.0), cache)
    # Same 4 frames (centres 1.25 .. 2.75 s); without the 512-token floor 48x64 stays 56x56,
    # with it the frames grow to 392x532.
    assert small.frame_indices.tolist() == fine.frame_indices.tolist() == [10, 14, 18, 22]
    assert (small.height, small.width, fine.height, fine.width) == (56, 56, 392, 532)
    assert (cache.stats.frame_misses, cache.stats.frame_hits) == (4, 4)
    assert np.array_equal(fine.frames, sample_clip(ref, crop_spec("fine", 1.0, 3.0)).frames)


def test_memory_budget_is_respected(video):
    frame_bytes = 48 * 64 * 3
    cache = DecodeCache(max_bytes=3 * frame_bytes)
    clip = sample_clip(VideoRef(video), preset("global"), cache)  # 8 frames decoded, at most 3 kept
    assert len(clip.frames) == 8
    assert cache.nbytes <= 3 * frame_bytes
    assert cache.stats.evictions == 5
    # Evicted frames are decoded again, correctly.
    again = sample_clip(VideoRef(video), preset("global"), cache)
    assert np.array_equal(clip.frames, again.frames)
    assert [index_of(f, 32) for f in again.frames] == again.frame_indices.tolist()


def test_zero_budget_caches_no_frames(video):
    cache = DecodeCache(max_bytes=0)
    sample_clip(VideoRef(video), preset("global"), cache)
    assert cache.nbytes == 0


def test_sources_are_lru_by_count(tmp_path):
    paths = [write_cfr_mp4(str(tmp_path / f"{i}.mp4"), n_frames=4, fps=4) for i in range(3)]
    cache = DecodeCache(max_sources=2)
    for p in paths:
        sample_clip(VideoRef(p), preset("global"), cache)
    assert cache.stats.source_opens == 3
    sample_clip(VideoRef(paths[2]), preset("global"), cache)  # still open
    assert cache.stats.source_opens == 3
    sample_clip(VideoRef(paths[0]), preset("global"), cache)  # evicted, reopened
    assert cache.stats.source_opens == 4


def test_rewritten_file_is_not_served_stale(tmp_path):
    path = str(tmp_path / "v.mp4")
    write_cfr_mp4(path, n_frames=8, fps=4)
    cache = DecodeCache()
    before = sample_clip(VideoRef(path), preset("global"), cache)
    # Rewrite with 16 frames (a different size and mtime): frame levels 0..15 now exist.
    write_cfr_mp4(path, n_frames=16, fps=4)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    after = sample_clip(VideoRef(path), preset("global"), cache)
    assert before.duration_s == pytest.approx(2.0) and after.duration_s == pytest.approx(4.0)
    assert [index_of(f, 16) for f in after.frames] == after.frame_indices.tolist()


def test_bad_video_through_cache_raises_and_caches_nothing(tmp_path):
    (tmp_path / "bad.mp4").write_text("not a video")
    cache = DecodeCache()
    for _ in range(2):
        with pytest.raises(VideoError) as info:
            sample_clip(VideoRef(str(tmp_path / "bad.mp4")), preset("global"), cache)
        assert info.value.reason == "not_video"
    assert cache.stats.source_opens == 0 and cache.nbytes == 0
    with pytest.raises(VideoError) as info:
        sample_clip(VideoRef(str(tmp_path / "gone.mp4")), preset("global"), cache)
    assert info.value.reason == "missing"


def test_invalid_budget():
    with pytest.raises(ValueError):
        DecodeCache(max_bytes=-1)
    with pytest.raises(ValueError):
        DecodeCache(max_sources=0)
