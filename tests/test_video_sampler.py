"""The sampler: frame choice by real timestamps, Qwen2.5-VL sizes and token counts, determinism,
and every bad input. Expected values are worked by hand in the comments."""
from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from video_fixtures import index_of, write_cfr_mp4, write_frame_folder, write_mp4

from vo3rl.video.budgets import crop_spec, preset
from vo3rl.video.cache import DecodeCache
from vo3rl.video.resize import PatchBudget, frame_size_for_budget, patch_budget, smart_resize, vision_tokens
from vo3rl.video.sampler import probe, sample_clip
from vo3rl.video.types import SamplingSpec, VideoError, VideoRef

VFR_PTS = [0.0, 0.1, 0.15, 0.4, 1.0, 1.05, 1.1, 2.0, 2.5, 3.0]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    return {
        # 8 fps, 32 frames: frame k starts at k/8 s (exact in binary), 4.0 s long, 320x240.
        "cfr": write_cfr_mp4(str(root / "cfr.mp4"), n_frames=32, fps=8, width=320, height=240),
        "vfr": write_mp4(str(root / "vfr.mp4"), VFR_PTS, bframes=True),
        # 12 PNGs at 4 fps: frame k at k/4 s, 3.0 s long, 40x30.
        "folder": write_frame_folder(str(root / "frames"), n_frames=12),
    }


def assert_frames_match_indices(clip, n_frames):
    decoded = [index_of(frame, n_frames) for frame in clip.frames]
    assert decoded == clip.frame_indices.tolist()


# --- Qwen2.5-VL size rules, pure arithmetic -------------------------------------------------------


def test_smart_resize_rounds_to_multiples_of_28():
    # 240/28 = 8.57 -> 9 -> 252; 320/28 = 11.43 -> 11 -> 308; 252*308 = 77,616 px fits [0, 1e6].
    assert smart_resize(240, 320, 0, 10**6) == (252, 308)
    # Ties go to the even multiple, like Qwen's reference (Python round): 42/28 = 1.5 -> 2 -> 56,
    # 70/28 = 2.5 -> 2 -> 56, 98/28 = 3.5 -> 4 -> 112. A side under 14 px still gets 28.
    assert smart_resize(42, 70, 0, 10**6) == (56, 56)
    assert smart_resize(98, 10, 0, 10**6) == (112, 28)


def test_smart_resize_shrinks_to_max_pixels_keeping_aspect():
    # 720x1280 rounds to 728x1288 = 937,664 px > 768*784 = 602,112. Shrink by
    # sqrt(921,600 / 602,112) = 1.2372: 720/1.2372 = 581.97 -> floor(20.78) * 28 = 560,
    # 1280/1.2372 = 1034.6 -> floor(36.95) * 28 = 1008; 20 x 36 = 720 tokens.
    assert smart_resize(720, 1280, 0, 768 * 784) == (560, 1008)


def test_smart_resize_grows_to_min_pixels():
    # 240x320 rounds to 252x308 = 99 tokens < 512. Grow by sqrt(512*784 / 76,800) = 2.2862:
    # 240*2.2862 = 548.7 -> ceil(19.6) = 20 -> 560; 320*2.2862 = 731.6 -> ceil(26.13) = 27 -> 756.
    assert smart_resize(240, 320, 512 * 784, 768 * 784) == (560, 756)


def test_smart_resize_rejects_extreme_aspect_and_empty():
    with pytest.raises(ValueError):
        smart_resize(10, 2100, 0, 10**6)
    with pytest.raises(ValueError):
        smart_resize(0, 10, 0, 10**6)


def test_patch_budget_follows_video_o3_rule():
    # Global view of a long video: 768 frames = 384 patches; 16384 // 384 = 42 tokens per patch
    # (under the 768 cap); floor ceil(512 / 384) = 2.
    assert patch_budget(768, 16384, 512, 768) == PatchBudget(min_tokens=2, max_tokens=42)
    # A 2-frame fine crop: one patch, min(6144, 768) = 768; floor 512.
    assert patch_budget(2, 6144, 512, 768) == PatchBudget(min_tokens=512, max_tokens=768)
    # 3 frames still cost 2 patches: 2048 // 2 = 1024 -> capped at 768; floor 256.
    assert patch_budget(3, 2048, 512, 768) == PatchBudget(min_tokens=256, max_tokens=768)


def test_long_video_global_view_stays_in_budget():
    # 720p at 42 tokens/patch: shrink by sqrt(921,600 / 32,928) = 5.290: 136.1 -> 4 * 28 = 112,
    # 241.9 -> 8 * 28 = 224; 4 x 8 = 32 tokens; 384 patches x 32 = 12,288 <= 16,384.
    h, w = frame_size_for_budget(720, 1280, patch_budget(768, 16384, 512, 768))
    assert (h, w) == (112, 224)
    assert vision_tokens(768, h, w) == 12288


def test_cap_wins_over_floor():
    # 112x112 (16 tokens) grown to a 26-token floor would round up to 168x168 = 36 tokens > 26:
    # the cap wins and the frame stays 112x112.
    assert frame_size_for_budget(112, 112, PatchBudget(min_tokens=26, max_tokens=26)) == (112, 112)


# --- timestamps against known frame times ------------------------------------------------------


def test_constant_fps_global_view(videos):
    clip = sample_clip(VideoRef(videos["cfr"]), preset("global"))
    # 4.0 s at 2 fps -> 8 frames in 0.5 s bins; centres 0.25, 0.75, ... fall exactly on frames
    # 2, 6, 10, ... (k/8 s).
    assert clip.frame_indices.tolist() == [2, 6, 10, 14, 18, 22, 26, 30]
    np.testing.assert_allclose(clip.timestamps_s, [0.25 + 0.5 * i for i in range(8)], atol=1e-6)
    assert clip.duration_s == pytest.approx(4.0) and clip.video_fps == pytest.approx(8.0)
    assert_frames_match_indices(clip, 32)
    # 4 patches: cap min(16384 // 4, 768) = 768, floor ceil(512 / 4) = 128; 240x320 grows to
    # sqrt(128*784 / 76,800) = 1.1431 -> ceil(9.80) = 10 -> 280, ceil(13.06) = 14 -> 392:
    # 10 x 14 = 140 tokens per patch, 560 in all.
    assert (clip.height, clip.width) == (280, 392)
    assert clip.frames.shape == (8, 280, 392, 3) and clip.frames.dtype == np.uint8
    assert clip.n_vision_tokens == 560
    assert clip.grid_thw == (4, 20, 28)


def test_constant_fps_crop_and_open_o3(videos):
    crop = sample_clip(VideoRef(videos["cfr"]), crop_spec("fine", 1.0, 2.0))
    # [1, 2] at 2 fps -> 2 frames; centres 1.25, 1.75 -> frames 10, 14; one patch of 560x756 (540 tokens).
    assert crop.frame_indices.tolist() == [10, 14]
    np.testing.assert_allclose(crop.timestamps_s, [1.25, 1.75], atol=1e-6)
    assert (crop.height, crop.width, crop.n_vision_tokens) == (560, 756, 540)
    o3 = sample_clip(VideoRef(videos["cfr"]), preset("open_o3"))
    # 16 frames over 4 s: bins of 0.25 s, centres 0.125 + 0.25 i -> frames 1, 3, ..., 31;
    # 8 patches x min(1024 // 8, 128) = 128 cap; 252x308 = 99 tokens fits -> 792 tokens.
    assert o3.frame_indices.tolist() == list(range(1, 32, 2))
    assert (o3.height, o3.width, o3.n_vision_tokens) == (252, 308, 792)
    assert o3.height * o3.width <= 128 * 28 * 28


def test_variable_frame_rate_uses_real_presentation_times(videos):
    info = probe(VideoRef(videos["vfr"]))
    assert info.n_frames == 10
    clip = sample_clip(VideoRef(videos["vfr"]), crop_spec("coarse", 0.0, 2.0))
    # [0, 2] at 2 fps -> 4 bins, centres 0.25, 0.75, 1.25, 1.75. Nearest frame starts:
    # 0.25 -> 0.15 (0.10 away vs 0.4 at 0.15), 0.75 -> 1.0, 1.25 -> 1.1, 1.75 -> 2.0.
    assert clip.frame_indices.tolist() == [2, 4, 6, 7]
    np.testing.assert_allclose(clip.timestamps_s, [0.15, 1.0, 1.1, 2.0], atol=1e-6)
    assert_frames_match_indices(clip, 10)


def test_window_inside_one_long_frame_repeats_it(videos):
    # The frame starting at 0.4 s stays on screen until 1.0 s: a window inside it holds one frame,
    # repeated to reach min_frames = 2.
    clip = sample_clip(VideoRef(videos["vfr"]), crop_spec("medium", 0.45, 0.95))
    assert clip.frame_indices.tolist() == [3, 3]
    np.testing.assert_allclose(clip.timestamps_s, [0.4, 0.4], atol=1e-6)


def test_frame_folder_in_natural_order(videos):
    ref = VideoRef(videos["folder"], frame_fps=4.0)
    info = probe(ref)
    assert (info.n_frames, info.duration_s, info.width, info.height) == (12, 3.0, 40, 30)
    clip = sample_clip(ref, preset("global"))
    # 3.0 s at 2 fps -> 6 bins of 0.5 s, centres 0.25 + 0.5 i -> frames 1, 3, ..., 11 (k/4 s).
    # frame_10.png must come after frame_9.png, which the grey levels check.
    assert clip.frame_indices.tolist() == [1, 3, 5, 7, 9, 11]
    np.testing.assert_allclose(clip.timestamps_s, [0.25, 0.75, 1.25, 1.75, 2.25, 2.75])
    assert_frames_match_indices(clip, 12)


def test_fewer_frames_than_asked_gives_each_once(videos):
    # open_o3 asks 16 frames; the VFR file has 10: each once, in order.
    clip = sample_clip(VideoRef(videos["vfr"]), preset("open_o3"))
    assert clip.frame_indices.tolist() == list(range(10))
    np.testing.assert_allclose(clip.timestamps_s, VFR_PTS, atol=1e-6)


def test_partial_window_is_clipped_to_the_video(videos):
    clip = sample_clip(VideoRef(videos["cfr"]), crop_spec("coarse", 3.0, 9.0))
    # Clipped to [3, 4]: centres 3.25, 3.75 -> frames 26, 30.
    assert clip.frame_indices.tolist() == [26, 30]


def test_max_frames_caps_a_long_window(videos):
    clip = sample_clip(VideoRef(videos["cfr"]), SamplingSpec(fps=8.0, max_frames=6))
    # 4 s at 8 fps asks 32 frames, capped at 6: bins of 2/3 s, centres 1/3, 1, 5/3, ... s, nearest
    # eighths: 1/3 -> 3/8 (frame 3), 1 -> 8, 5/3 -> 13 (13/8 = 1.625), 7/3 -> 19 (2.375),
    # 3 -> 24, 11/3 -> 29 (3.625).
    assert clip.frame_indices.tolist() == [3, 8, 13, 19, 24, 29]


# --- determinism -----------------------------------------------------------------------------------


def _digest(clip) -> str:
    return hashlib.sha256(clip.frames.tobytes() + clip.timestamps_s.tobytes()).hexdigest()


def test_repeated_sampling_is_bit_identical(videos):
    ref, spec = VideoRef(videos["cfr"]), crop_spec("medium", 0.3, 3.3)
    cache = DecodeCache()
    digests = {_digest(sample_clip(ref, spec)), _digest(sample_clip(ref, spec, cache)), _digest(sample_clip(ref, spec, cache))}
    assert len(digests) == 1


def test_another_process_gets_the_same_bytes(videos):
    ref, spec = VideoRef(videos["vfr"]), crop_spec("fine", 0.0, 3.0)
    code = (
        "import hashlib, sys; from vo3rl.video.sampler import sample_clip; from vo3rl.video.budgets import crop_spec;"
        "from vo3rl.video.types import VideoRef; c = sample_clip(VideoRef(sys.argv[1]), crop_spec('fine', 0.0, 3.0));"
        "print(hashlib.sha256(c.frames.tobytes() + c.timestamps_s.tobytes()).hexdigest())"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code, videos["vfr"]], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.strip() == _digest(sample_clip(ref, spec))


# --- bad input ----------------------------------------------------------------------------------


def _reason(ref, spec=None):
    with pytest.raises(VideoError) as info:
        sample_clip(ref, spec or preset("global"))
    return info.value.reason


def test_missing_file(tmp_path):
    assert _reason(VideoRef(str(tmp_path / "nope.mp4"))) == "missing"


def test_zero_length_file(tmp_path):
    (tmp_path / "zero.mp4").write_bytes(b"")
    assert _reason(VideoRef(str(tmp_path / "zero.mp4"))) == "empty"


def test_text_file_named_mp4(tmp_path):
    (tmp_path / "notes.mp4").write_text("this is a shopping list, not a video\n" * 20)
    assert _reason(VideoRef(str(tmp_path / "notes.mp4"))) == "not_video"


def test_truncated_mp4(tmp_path, videos):
    data = open(videos["cfr"], "rb").read()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    assert _reason(VideoRef(str(tmp_path / "cut.mp4"))) == "truncated"


def test_unreadable_codec(tmp_path):
    import av

    # AV1 written by PyAV's SVT encoder: decord's bundled FFmpeg has no AV1 decoder.
    path = str(tmp_path / "av1.mp4")
    with av.open(path, "w") as container:
        stream = container.add_stream("libsvtav1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(4):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 40, np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert _reason(VideoRef(path)) == "codec"


def test_frame_folder_without_fps_or_frames(tmp_path, videos):
    assert _reason(VideoRef(videos["folder"])) == "bad_metadata"
    assert _reason(VideoRef(videos["folder"], frame_fps=float("nan"))) == "bad_metadata"
    (tmp_path / "empty").mkdir()
    assert _reason(VideoRef(str(tmp_path / "empty"), frame_fps=2.0)) == "empty"


def test_corrupt_image_in_frame_folder(tmp_path):
    folder = write_frame_folder(str(tmp_path / "f"), n_frames=4)
    with open(os.path.join(folder, "frame_3.png"), "wb") as fh:
        fh.write(b"\x89PNG garbage")
    assert _reason(VideoRef(folder, frame_fps=2.0)) == "not_video"


def test_declared_metadata_disagreeing_with_stream_is_not_trusted(videos):
    # The B-frame VFR mp4 declares 10 frames at 40/9 fps (2.25 s) while its frames run to 3.0 s;
    # the sampler's times come from the stream, so the frame at 3.0 s is still found.
    info = probe(VideoRef(videos["vfr"]))
    assert info.declared_duration_s is not None and not math.isclose(info.declared_duration_s, info.duration_s, abs_tol=0.5)
    assert info.duration_s >= 3.0
    clip = sample_clip(VideoRef(videos["vfr"]), crop_spec("coarse", 2.6, 3.05))
    np.testing.assert_allclose(clip.timestamps_s, [2.5, 3.0], atol=1e-6)
    assert_frames_match_indices(clip, 10)


@pytest.mark.parametrize(
    "window", [(5.0, 9.0), (-3.0, 0.0), (2.0, 1.0), (1.0, 1.0), (float("nan"), 2.0), (0.0, float("inf")), ("soon", 2.0)]
)
def test_window_outside_or_malformed(videos, window):
    assert _reason(VideoRef(videos["cfr"]), crop_spec("coarse", *window)) == "window"


def test_impossible_spec_is_a_value_error(videos):
    with pytest.raises(ValueError):
        sample_clip(VideoRef(videos["cfr"]), SamplingSpec(fps=0.0))
    with pytest.raises(ValueError):
        preset("ultra")
    with pytest.raises(ValueError):
        crop_spec("global", 0.0, 1.0)
