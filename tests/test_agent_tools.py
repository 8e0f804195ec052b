"""The tool registry and the video-crop tool on a real (tiny) mp4."""
import numpy as np
import pytest
from video_fixtures import index_of, write_cfr_mp4

from vo3rl.agent.parse import ParseError, ToolCall, parse_tool_call
from vo3rl.agent.tools import Observation, get_tool, register_tool, run_tool_call, tool_names, video_crop
from vo3rl.config.prompts import PromptTemplates
from vo3rl.video.budgets import crop_spec
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import VideoRef

TEMPLATES = PromptTemplates()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """9 s at 4 fps (36 frames, 64x48); frame i has grey level 7*i, unique below 37 frames."""
    return VideoRef(write_cfr_mp4(str(tmp_path_factory.mktemp("crop") / "v.mp4"), n_frames=36, fps=4))


def call(start, end, strategy="medium"):
    return ToolCall(start, end, strategy, (start, end))


def test_crop_is_the_samplers_clip_with_its_line(video):
    obs = video_crop(call(2.0, 6.0), video, 9.0, templates=TEMPLATES, cache=DecodeCache())
    assert obs.ok and obs.error is None
    direct = sample_clip(video, crop_spec("medium", 2.0, 6.0))
    assert np.array_equal(obs.clip.frames, direct.frames)
    assert obs.clip.n_vision_tokens == direct.n_vision_tokens <= 4096
    # 4 s at 2 fps = 8 frames in 8 bins of 0.5 s; centres 2.25, 2.75, ... fall between frames 0.25 s
    # apart, ties go to the earlier frame: 2.25 s -> frame 9 (2.25 s exactly), 2.75 s -> frame 11, ...
    assert len(obs.clip.frames) == 8
    assert [index_of(frame, 36) for frame in obs.clip.frames] == [9, 11, 13, 15, 17, 19, 21, 23]
    assert list(obs.clip.timestamps_s) == [i / 4 for i in (9, 11, 13, 15, 17, 19, 21, 23)]
    assert obs.text == "Sampled at 2 fps: 8 frames from 2s to 6s."


def test_strategy_budgets_and_recipe_overrides(video):
    coarse = video_crop(call(0.0, 9.0, "coarse"), video, 9.0, templates=TEMPLATES)
    fine = video_crop(call(0.0, 9.0, "fine"), video, 9.0, templates=TEMPLATES)
    assert coarse.clip.n_vision_tokens <= 2048 and fine.clip.n_vision_tokens <= 6144
    assert fine.clip.height * fine.clip.width >= coarse.clip.height * coarse.clip.width
    small = video_crop(call(0.0, 9.0, "fine"), video, 9.0, templates=TEMPLATES,
                       budgets={"fine": {"max_tokens": 100, "min_tokens": 0}})
    assert small.clip.n_vision_tokens <= 100


def test_unreadable_video_gives_an_error_observation(tmp_path):
    obs = video_crop(call(1.0, 3.0), VideoRef(str(tmp_path / "missing.mp4")), 9.0, templates=TEMPLATES)
    assert not obs.ok and obs.clip is None and obs.error.kind == "video_error"
    assert obs.text.startswith("The tool call failed:")


def test_run_tool_call_turns_parse_errors_into_observations(video):
    bad = parse_tool_call('<grounding>{"temporal_segment": [3, 3.2], "sampling_strategy": "fine"}</grounding>', 10)
    obs = run_tool_call(bad, video, 10.0, TEMPLATES)
    assert obs.clip is None and obs.error.kind == "segment_too_short"
    assert bad.error.message in obs.text
    good = parse_tool_call('<grounding>{"temporal_segment": [1, 9], "sampling_strategy": "coarse"}</grounding>', 10)
    assert run_tool_call(good, video, 10.0, TEMPLATES).clip is not None


def test_registry():
    assert "video_crop" in tool_names() and get_tool("video_crop") is video_crop

    @register_tool("test_echo")
    def echo(call, ref, duration_s, *, templates, cache=None, budgets=None):
        return Observation(text=f"echo {call.start_s:g}-{call.end_s:g}")

    assert get_tool("test_echo")(call(1, 2), None, None, templates=TEMPLATES).text == "echo 1-2"
    with pytest.raises(ValueError, match="already registered"):
        register_tool("test_echo")(lambda *a, **k: None)
    with pytest.raises(KeyError, match="video_crop"):
        get_tool("no_such_tool")
    assert ParseError("x", "y").kind == "x"
