"""Pure pieces of the learner, checked by hand: multimodal RoPE positions, token-budget micro-batches,
the schedule, and the clip timing given to vLLM."""
import math

import numpy as np
import pytest

from vo3rl.model.positions import mrope_positions
from vo3rl.train.batch import micro_batches
from vo3rl.train.schedule import cosine_with_warmup


def test_mrope_positions_by_hand():
    # 2 text tokens, a video of 2 temporal patches x (4x4 patches -> 2x2 tokens), 2 more text tokens.
    # tokens_per_second 2 and 1 s per temporal patch: temporal index steps by 2.
    pos = mrope_positions(2 + 8 + 2, [(2, (2, 4, 4), 1.0)], tokens_per_second=2)
    assert pos[:, :2].tolist() == [[0, 1]] * 3
    assert pos[0, 2:10].tolist() == [2, 2, 2, 2, 4, 4, 4, 4]
    assert pos[1, 2:10].tolist() == [2, 2, 3, 3, 2, 2, 3, 3]
    assert pos[2, 2:10].tolist() == [2, 3, 2, 3, 2, 3, 2, 3]
    # Text resumes after the largest index so far (4), as vLLM and the released model do.
    assert pos[:, 10:].tolist() == [[5, 6]] * 3


def test_mrope_fractional_time_is_floored():
    pos = mrope_positions(3, [(0, (3, 2, 2), 0.7)], tokens_per_second=2)  # 1.4 per patch
    assert pos[0].tolist() == [0, 1, 2]  # floor(0), floor(1.4), floor(2.8)


def test_micro_batches_respect_the_budget():
    lengths = [100, 300, 250, 50, 600]
    groups = micro_batches(lengths, token_budget=600)
    assert sorted(i for g in groups for i in g) == list(range(5))
    for group in groups:
        assert len(group) == 1 or len(group) * max(lengths[i] for i in group) <= 600
    assert groups[0] == [4]  # the longest row alone
    assert groups[1] == [1, 2]  # 2 x 300 = 600


def test_cosine_with_warmup():
    assert cosine_with_warmup(0, 10, 2) == pytest.approx(0.5)
    assert cosine_with_warmup(1, 10, 2) == pytest.approx(1.0)
    assert cosine_with_warmup(6, 10, 2) == pytest.approx(0.5)  # half way through the decay
    assert cosine_with_warmup(10, 10, 2, min_ratio=0.1) == pytest.approx(0.1)


def test_vllm_metadata_gives_the_clip_rate():
    from vo3rl.video.timing import clip_fps, second_per_grid, vllm_video_item
    from vo3rl.video.types import Clip, SamplingSpec

    frames = np.zeros((8, 56, 56, 3), np.uint8)
    clip = Clip(frames, np.linspace(10, 13.5, 8), np.arange(8), 56, 56, 16, 25.0, 100.0,
                SamplingSpec(start_s=10.0, end_s=14.0))
    assert clip_fps(clip) == 2.0 and second_per_grid(clip) == 1.0
    _, meta = vllm_video_item(clip)
    # What HF's processor inside vLLM computes: len(frames_indices) / total_num_frames * fps.
    assert len(meta["frames_indices"]) / meta["total_num_frames"] * meta["fps"] == 2.0
    assert math.isclose(meta["duration"], 4.0)
