"""Trajectories for the learner tests: a real mp4 (flat colours that change every second), the real
tokenizer, and the Video-o3 chat layout with a global view and two crops."""
from __future__ import annotations

import av
import numpy as np
import pytest

from vo3rl.agent.render import from_sft_example
from vo3rl.data.chat import ChatTurn, SFTExample, VideoUse
from vo3rl.data.schema import Sample
from vo3rl.video.budgets import preset
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import VideoRef

# Small budgets keep sequences short; 12 tokens per 2-frame patch keeps frames >= 56x56 px, the
# smallest the Qwen2.5-VL video processor accepts without resizing.
BUDGETS = dict(max_tokens=64, min_tokens=8, max_tokens_per_patch=12)


def write_colour_mp4(path: str, seconds: int = 10, fps: int = 4, width: int = 112, height: int = 84, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, size=(seconds, 3), dtype=np.uint8)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(seconds * fps):
            frame = np.empty((height, width, 3), np.uint8)
            frame[:] = colours[i // fps]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def clip_for(ref: VideoRef):
    def sample(use: VideoUse):
        return sample_clip(ref, preset(use.preset, **BUDGETS).window(use.start_s, use.end_s))

    return sample


def three_video_example(video_path: str, sample_id: str = "s1", answer_text: str = "A") -> SFTExample:
    """Global view, a crop, a second crop, then the answer: 3 videos, 2 groundings, 1 answer."""
    sample = Sample(id=sample_id, question="What colour is shown between 5 s and 7 s?", answer="A",
                    video=VideoRef(video_path), options=["A. red", "B. blue"], duration_s=10.0)
    return SFTExample(sample, [
        ChatTurn("user", None, VideoUse("global")),
        ChatTurn("assistant", '<think>I need a look.</think>\n<grounding>{"temporal_segment": [2, 4], '
                              '"sampling_strategy": "coarse"}</grounding>'),
        ChatTurn("user", None, VideoUse("coarse", 2.0, 4.0)),
        ChatTurn("assistant", '<think>Not there.</think>\n<grounding>{"temporal_segment": [5, 7], '
                              '"sampling_strategy": "fine"}</grounding>'),
        ChatTurn("user", None, VideoUse("fine", 5.0, 7.0)),
        ChatTurn("assistant", f"<think>It is red.</think>\n<answer>{answer_text}</answer>"),
    ])


def trajectory(tokenizer, video_path: str, **kwargs):
    example = three_video_example(video_path, **kwargs)
    return from_sft_example(example, tokenizer, clip_for(example.sample.video))


def local_ray_fixture(temp_dir: str):
    """A module-scoped fixture running a 2-CPU local Ray cluster (no dashboard, worker logs kept in
    `temp_dir`): `ray_local = local_ray_fixture("/tmp/vo3rl-x")` in a test module."""

    @pytest.fixture(scope="module")
    def ray_local():
        import ray

        ray.init(num_cpus=2, _temp_dir=temp_dir, include_dashboard=False, log_to_driver=False)
        yield
        ray.shutdown()

    return ray_local
