"""The episode loop and the many-episode driver against a SCRIPTED engine (canned turns, no vLLM): tool
calls, error observations, every limit, the forced last turn, Open-o3's single turn, skipped samples."""
import logging
import math

import numpy as np
import pytest
from learner_fixtures import write_colour_mp4

from vo3rl.agent.loop import LoopConfig, TurnOutput, TurnRequest, run_episode
from vo3rl.agent.trajectory import Role
from vo3rl.config.prompts import PromptTemplates
from vo3rl.config.rollout import RolloutConfig
from vo3rl.data.schema import Sample, Task
from vo3rl.rollout.service import RolloutService, loop_config, request_seed
from vo3rl.video.cache import DecodeCache
from vo3rl.video.types import VideoRef

CALL = '<think>look closer</think>\n<grounding>{"temporal_segment": [2, 5], "sampling_strategy": "fine"}</grounding>'
REVERSED = '<think>oops</think>\n<grounding>{"temporal_segment": [6, 3], "sampling_strategy": "fine"}</grounding>'
ANSWER = "<think>it is red</think>\n<answer>A</answer>"
SMALL = dict(max_tokens=24, min_tokens=0, max_tokens_per_patch=6)  # 56x56 px frames: 4 tokens per 2 frames
PRESETS = {"global": {**SMALL, "max_frames": 8}, "fine": SMALL, "coarse": SMALL, "medium": SMALL,
           "open_o3": {**SMALL, "num_frames": 4, "max_frames": 4}}


class EngineRefusal(Exception):
    reason = "rejected"


class ScriptedEngine:
    """A stepping engine whose turns come from `script(key, request) -> text` (or EngineRefusal). The
    text is tokenized, cut at the request's max_new_tokens, closed with <|im_end|> unless it ends at
    the stop string (as vLLM stops), and every token gets log-prob -0.5. Two turns finish per step,
    so episodes interleave."""

    def __init__(self, tokenizer, script):
        self.tokenizer, self.script = tokenizer, script
        self.im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.requests: list[tuple] = []
        self.queue: list[tuple] = []

    @property
    def busy(self) -> bool:
        return bool(self.queue)

    def submit(self, key, request, greedy=False, seed=None):
        self.requests.append((key, request, greedy, seed))
        self.queue.append((key, request))

    def turn(self, key, request):
        text = self.script(key, request)
        if isinstance(text, Exception):
            return text
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if not any(text.endswith(s) for s in request.stop):
            ids.append(self.im_end)
        ids = ids[: request.max_new_tokens]
        return TurnOutput(ids, text, [-0.5] * len(ids))

    def step(self):
        finished, self.queue = self.queue[:2], self.queue[2:]
        return [(key, self.turn(key, request)) for key, request in finished]

    def abort_all(self):
        self.queue.clear()

    def generate(self, context, clips, max_new_tokens, stop=("</grounding>",)):
        """The blocking `Engine` interface: turns are numbered by call."""
        request = TurnRequest(context, clips, [], max_new_tokens, stop, len(self.requests))
        self.requests.append((None, request, True, None))
        return self.turn(None, request)


def by_turn(*texts):
    """A script giving texts[turn] (the last one repeated)."""
    return lambda key, request: texts[min(request.turn, len(texts) - 1)]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_colour_mp4(str(tmp_path_factory.mktemp("rollout_video") / "v.mp4"), seconds=10, width=56, height=56)


def make_sample(video, sample_id="s1", answer="A", **kw):
    return Sample(id=sample_id, question="What colour is shown?", answer=answer, video=VideoRef(video),
                  options=["A. red", "B. blue"], duration_s=10.0, **kw)


def service(tokenizer, script, **cfg):
    engine = ScriptedEngine(tokenizer, script)
    return RolloutService(engine, tokenizer, RolloutConfig(**cfg), presets=PRESETS, cache=DecodeCache()), engine


def decoded(tokenizer, ids):
    return tokenizer.decode(list(ids))


def test_call_error_answer_is_one_growing_context(tokenizer, video):
    svc, engine = service(tokenizer, by_turn(CALL, REVERSED, ANSWER), tool_threads=2)
    batch = svc.generate([make_sample(video)], 1)
    (traj,) = batch.trajectories
    assert traj.turns == 3 and not traj.exceeded and traj.seconds > 0  # timed from the call's start
    assert len(traj.tool_calls) == 1 and traj.tool_calls[0].strategy == "fine"
    assert traj.turn_errors == ["segment_reversed"]
    assert len(traj.videos) == 2  # the global view and the one valid crop; the error added none
    # Each turn's context is the previous context + its generated ids + the observation: one context.
    contexts = [request.context for _, request, _, _ in engine.requests]
    for earlier, later in zip(contexts, contexts[1:]):
        assert later[: len(earlier)] == earlier
    assert contexts[-1] == traj.token_ids[: len(contexts[-1])].tolist()
    assert "The tool call failed" in decoded(tokenizer, contexts[2][len(contexts[1]):])
    # Log-probs exactly on the generated tokens.
    assistant = traj.roles == Role.ASSISTANT
    assert np.all(traj.logprobs[assistant] == -0.5) and np.all(np.isnan(traj.logprobs[~assistant]))
    assert traj.loss_mask().sum() == assistant.sum() > 0


def test_turn_limit_exceeds_and_masks_the_loss(tokenizer, video):
    svc, engine = service(tokenizer, by_turn(CALL), max_turns=3)
    (traj,) = svc.generate([make_sample(video)], 1).trajectories
    assert traj.exceeded and traj.exceeded_reason == "turns"
    assert traj.turns == 3 and len(traj.videos) == 3
    assert not traj.loss_mask().any()
    assert all(not greedy for _, _, greedy, _ in engine.requests)


def test_eval_mode_is_greedy_and_forces_the_last_turn(tokenizer, video):
    svc, engine = service(tokenizer, by_turn(CALL, CALL, ANSWER), max_turns=2, eval_max_turns=3)
    (traj,) = svc.generate([make_sample(video)], 1, mode="eval").trajectories
    assert traj.turns == 3 and not traj.exceeded
    assert all(greedy for _, _, greedy, _ in engine.requests)
    force = PromptTemplates().force_answer.strip()
    contexts = [decoded(tokenizer, request.context) for _, request, _, _ in engine.requests]
    assert force not in contexts[1] and force in contexts[2]


def test_video_limit(tokenizer, video):
    svc, _ = service(tokenizer, by_turn(CALL), max_videos=2)
    (traj,) = svc.generate([make_sample(video)], 1).trajectories
    assert traj.exceeded and traj.exceeded_reason == "videos"
    assert len(traj.videos) == 2 and traj.turns == 2


def test_context_limit(tokenizer, video):
    # Room for the prompt and 3 generated tokens: the first turn is cut at 3 tokens (neither call nor
    # answer), its error observation fills the context, and the next turn has no room.
    probe, _ = service(tokenizer, by_turn(ANSWER))
    prompt_len = probe.generate([make_sample(video)], 1).trajectories[0].roles.tolist().index(Role.ASSISTANT)
    svc, engine = service(tokenizer, by_turn(CALL), max_context=prompt_len + 3 + 10, reserve_tokens=10,
                          max_model_len=prompt_len + 100)
    (traj,) = svc.generate([make_sample(video)], 1).trajectories
    assert engine.requests[0][1].max_new_tokens == 3
    assert traj.exceeded and traj.exceeded_reason == "context"
    assert traj.turns == 1 and traj.turn_errors == ["no_action"]


def test_open_o3_is_one_turn_without_stop_strings(tokenizer, video):
    text = "<think>red at <t>1.0</t>s</think>\n<answer>A</answer>"
    svc, engine = service(tokenizer, by_turn(text), protocol="open_o3")
    (traj,) = svc.generate([make_sample(video, task=Task.MCQ)], 1).trajectories
    assert traj.protocol == "open_o3" and traj.turns == 1 and not traj.exceeded
    (_, request, _, _), = engine.requests
    assert request.stop == () and len(request.clips) == 1 and len(request.clips[0].frames) == 4
    # A grounding written under Open-o3 is plain text: still one turn, no tool.
    svc, engine = service(tokenizer, by_turn(CALL), protocol="open_o3")
    (traj,) = svc.generate([make_sample(video)], 1).trajectories
    assert traj.turns == 1 and len(engine.requests) == 1 and not traj.exceeded and not traj.tool_calls


def test_groups_seeds_skips_and_failures(tokenizer, video, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")

    def script(key, request):
        return EngineRefusal() if key == (2, 1) else ANSWER

    svc, engine = service(tokenizer, script, seed=7)
    samples = [make_sample(video, "a"), make_sample(str(tmp_path / "missing.mp4"), "gone"),
               make_sample(video, "b"), make_sample(str(broken), "junk")]
    batch = svc.generate(samples, 3, group_offset=10)
    assert batch.skipped == {"gone": "missing", "junk": "not_video"}
    assert batch.failed == {"rejected": 1}
    assert [(t.sample_id, t.group_index) for t in batch.trajectories] == [("a", 10)] * 3 + [("b", 12)] * 2
    seeds = {key: seed for key, _, _, seed in engine.requests}
    assert len(set(seeds.values())) == len(engine.requests) == 6
    assert seeds[(0, 0)] == request_seed(7, 0, "a", 10, 0, 0)
    # A second call draws other seeds for the same sample, member and turn.
    svc.generate(samples[:1], 1, group_offset=10)
    assert engine.requests[-1][3] == request_seed(7, 1, "a", 10, 0, 0) != seeds[(0, 0)]
    assert batch.stats["trajectories"] == 5 and batch.stats["skipped_samples"] == 2


def test_blocking_run_episode_matches_the_driver(tokenizer, video):
    script = by_turn(CALL, ANSWER)
    svc, _ = service(tokenizer, script)
    (driven,) = svc.generate([make_sample(video)], 1).trajectories
    engine = ScriptedEngine(tokenizer, script)
    loop = LoopConfig(max_turns=6, sampling=PRESETS)
    single = run_episode(engine, make_sample(video), tokenizer, loop, cache=DecodeCache())
    assert single.token_ids.tolist() == driven.token_ids.tolist()
    assert single.roles.tolist() == driven.roles.tolist()


def test_config_checks_and_engine_args():
    with pytest.raises(ValueError, match="max_model_len"):
        RolloutConfig(max_context=40000).validate()
    with pytest.raises(ValueError, match="protocol"):
        RolloutConfig(protocol="other").validate()
    cfg = RolloutConfig(max_turns=6, eval_max_turns=8, kv_cache_gib=0.5, profile_video={"num_frames": 16})
    assert loop_config(cfg, "train").max_turns == 6 and loop_config(cfg, "eval").max_turns == 8
    with pytest.raises(ValueError):
        loop_config(cfg, "test")
    args = cfg.engine_args("/m")
    assert args["kv_cache_memory_bytes"] == 512 * 2**20
    assert args["limit_mm_per_prompt"]["video"] == {"count": 12, "num_frames": 16}
    assert math.isclose(args["gpu_memory_utilization"], 0.85) and args["enable_prefix_caching"]


def test_episode_records_hold_what_a_user_reads_back(tokenizer, video):
    from vo3rl.evaluation.episodes import episode_record
    from vo3rl.rewards import RewardConfig, score

    engine = ScriptedEngine(tokenizer, lambda key, request: CALL if len(request.clips) == 1 else ANSWER)
    loop = LoopConfig(max_turns=4, sampling=PRESETS)
    records = []
    for sample in (make_sample(video, "good"), make_sample(video, "wrong", answer="B")):
        trajectory = run_episode(engine, sample, tokenizer, loop, cache=DecodeCache())
        records.append(episode_record(sample, trajectory, score(sample, trajectory.assistant_texts,
                                                                RewardConfig(protocol="video_o3"))))
    assert [e["components"]["accuracy"] for e in records] == [1.0, 0.0]
    good = records[0]
    assert good["turns"] == [CALL, ANSWER] and good["tool_calls"] == 1 and good["components"]["format"] == 1.0
    # The question, the parsed prediction against the truth, and the views.
    assert (good["question"], good["prediction"], good["answer"], good["task"]) == (
        "What colour is shown?", "A", "A", "mcq")
    global_view, crop = good["views"]
    assert (global_view["start_s"], global_view["turn"]) == (None, 0)
    assert (crop["start_s"], crop["end_s"], crop["turn"]) == (2.0, 5.0, 1)
    assert good["vision_tokens"] == global_view["vision_tokens"] + crop["vision_tokens"] > 0


def test_the_reward_grammar_reaches_the_episode_loop():
    """One source for the tool-call grammar: the rollout accepts exactly the calls the reward parses."""
    from vo3rl.config.reward import RewardConfig
    from vo3rl.config.rollout import RolloutConfig
    from vo3rl.rollout.service import loop_config

    reward = RewardConfig(strategies=["fine"], min_segment_s=2.0)
    loop = loop_config(RolloutConfig(), "train", {}, {"strategies": reward.strategies, "min_segment_s": reward.min_segment_s})
    assert (loop.strategies, loop.min_segment_s) == (("fine",), 2.0)
    assert (loop_config(RolloutConfig(), "train").strategies, loop_config(RolloutConfig(), "train").min_segment_s) == (
        ("coarse", "medium", "fine"), 1.0)


def test_an_eval_call_logs_its_progress_and_a_train_call_does_not(tokenizer, video, caplog, monkeypatch):
    monkeypatch.setattr("vo3rl.log.PROGRESS_EVERY_S", 0.0)  # a line for every finished episode
    caplog.set_level(logging.INFO, logger="vo3rl.progress")
    svc, _ = service(tokenizer, by_turn(CALL, ANSWER))
    samples = [make_sample(video, f"s{i}") for i in range(3)]
    svc.generate(samples, 1, mode="train")
    svc.generate(samples, 1, mode="eval")
    messages = [r.getMessage() for r in caplog.records if r.name == "vo3rl.progress"]
    assert [m.split(",")[0] for m in messages] == [
        "rollout eval call 1: 1/3 episodes (33%)", "rollout eval call 1: 2/3 episodes (67%)",
        "rollout eval call 1: 3/3 episodes (100%)"]
