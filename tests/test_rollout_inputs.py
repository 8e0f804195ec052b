"""Contexts as vLLM prompts: one pad per video, frames timed like the learner's, stable video ids."""
import pytest
from learner_fixtures import write_colour_mp4

from vo3rl.agent.render import TrajectoryBuilder
from vo3rl.config.prompts import PromptTemplates
from vo3rl.data.schema import Sample
from vo3rl.rollout.engine_inputs import collapse_video_pads, count_pad_runs, engine_prompt, video_uuid
from vo3rl.video.budgets import crop_spec, preset
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import VideoRef

PAD = 151656
SMALL = dict(max_tokens=24, min_tokens=0, max_tokens_per_patch=6)


def test_collapse_and_count_pad_runs():
    ids = [1, PAD, PAD, PAD, 2, PAD, 3, PAD, PAD]
    assert collapse_video_pads(ids, PAD) == [1, PAD, 2, PAD, 3, PAD]
    assert count_pad_runs(ids, PAD) == 3
    assert collapse_video_pads([1, 2], PAD) == [1, 2] and count_pad_runs([], PAD) == 0


@pytest.fixture(scope="module")
def two_video_context(tokenizer, tmp_path_factory):
    video = write_colour_mp4(str(tmp_path_factory.mktemp("inputs") / "v.mp4"), seconds=10, width=56, height=56)
    sample = Sample(id="s", question="Colour?", answer="A", video=VideoRef(video), options=["A. red"], duration_s=10.0)
    glob = sample_clip(sample.video, preset("global", max_frames=4, **SMALL))
    crop = sample_clip(sample.video, crop_spec("fine", 2.0, 6.0, **SMALL))
    builder = TrajectoryBuilder(tokenizer, sample, PromptTemplates())
    builder.add_prompt(glob)
    builder.add_assistant('<grounding>{"temporal_segment": [2, 6], "sampling_strategy": "fine"}</grounding>', close=False)
    builder.add_observation(crop)
    traj = builder.build()
    return traj, [glob, crop]


def test_engine_prompt_has_one_pad_per_video_and_learner_timing(two_video_context):
    traj, clips = two_video_context
    context = traj.token_ids.tolist()
    prompt = engine_prompt(context, clips, traj.videos, PAD)
    ids = prompt["prompt_token_ids"]
    assert ids.count(PAD) == 2
    assert len(ids) == len(context) - sum(v.n_vision_tokens for v in traj.videos) + 2
    (glob_frames, glob_meta), (crop_frames, crop_meta) = prompt["multi_modal_data"]["video"]
    assert glob_frames is clips[0].frames and crop_frames is clips[1].frames
    # 4 frames over the whole 10 s video -> 0.4 fps; the crop: 8 frames over 4 s -> 2 fps.
    assert glob_meta["fps"] == pytest.approx(0.4) and crop_meta["fps"] == pytest.approx(2.0)
    assert crop_meta["frames_indices"] == list(range(8)) and crop_meta["total_num_frames"] == 8


def test_video_ids_are_stable_and_salted_apart(two_video_context):
    traj, clips = two_video_context
    context = traj.token_ids.tolist()
    first = engine_prompt(context, clips, traj.videos, PAD)["multi_modal_uuids"]["video"]
    again = engine_prompt(context, clips, traj.videos, PAD)["multi_modal_uuids"]["video"]
    salted = engine_prompt(context, clips, traj.videos, PAD, salt="turn-3")["multi_modal_uuids"]["video"]
    assert first == again and first[0] != first[1]
    assert not set(first) & set(salted)
    assert video_uuid(traj.videos[0]) == first[0]
    # No spans: vLLM hashes the frames itself.
    assert "multi_modal_uuids" not in engine_prompt(context, clips, [None, None], PAD)


def test_mismatched_videos_are_refused(two_video_context):
    traj, clips = two_video_context
    with pytest.raises(ValueError, match="2 video-pad runs, 1 clips"):
        engine_prompt(traj.token_ids.tolist(), clips[:1], traj.videos[:1], PAD)
