"""The Video-o3 agent loop, independent of the engine that generates.

One growing context: generate a turn (stopping at `</grounding>` or end of turn), parse it, run the
crop tool, append the observation, generate again, until an answer or a limit. Any engine that can
continue a token context with the clips shown so far plugs in through `Engine` (the transformers
engine in `vo3rl.train.hf_engine` for evaluation during SFT; a vLLM engine for the rollout workers).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from vo3rl.agent.parse import NO_ACTION, TurnKind
from vo3rl.agent.prompts import PromptTemplates
from vo3rl.agent.render import TrajectoryBuilder
from vo3rl.agent.tools import error_observation, run_tool_call
from vo3rl.agent.trajectory import Trajectory
from vo3rl.data.schema import Sample
from vo3rl.video.budgets import preset
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import Clip, VideoError

STOP_STRINGS = ("</grounding>",)


@dataclass
class TurnOutput:
    """One generated turn: ids as generated (ending with the end-of-turn token if the engine stopped
    there), its text, and per-token log-probs (None when the engine does not give them)."""

    token_ids: list[int]
    text: str
    logprobs: list[float] | None = None


class Engine(Protocol):
    def generate(self, context: list[int], clips: list[Clip], max_new_tokens: int,
                 stop: tuple[str, ...] = STOP_STRINGS) -> TurnOutput:
        """Continue `context` (token ids, with each video's pad run already expanded; `clips` are the
        videos in context order) by one assistant turn."""
        ...


@dataclass
class LoopConfig:
    """Limits of one episode (methods.md section 1): `max_turns` assistant turns (the last one is told
    to answer), `max_videos` videos in context, `max_context` tokens minus `reserve_tokens`.
    `sampling` overrides fields of the named sampling presets, e.g. {"global": {"max_frames": 16}}."""

    max_turns: int = 8
    max_new_tokens: int = 1024
    max_videos: int = 12
    max_context: int = 32768
    reserve_tokens: int = 2000
    sampling: dict = field(default_factory=dict)


def run_episode(engine: Engine, sample: Sample, tokenizer, cfg: LoopConfig, templates: PromptTemplates | None = None,
                cache: DecodeCache | None = None) -> Trajectory:
    """One trajectory for `sample`. Never raises on model output; an unreadable global video raises
    VideoError (the caller skips the sample)."""
    templates = templates or PromptTemplates()
    budgets = cfg.sampling
    clip = sample_clip(sample.video, preset("global", **budgets.get("global", {})), cache)
    builder = TrajectoryBuilder(tokenizer, sample, templates)
    builder.add_prompt(clip)
    clips = [clip]
    exceeded = None
    for turn in range(cfg.max_turns):
        room = cfg.max_context - cfg.reserve_tokens - builder.n_tokens
        if room <= 0:
            exceeded = "context"
            break
        context = builder.build().token_ids.tolist()
        out = engine.generate(context, clips, min(cfg.max_new_tokens, room))
        step = builder.add_assistant(out.token_ids, out.logprobs)
        if step.kind == TurnKind.ANSWER:
            break
        if turn == cfg.max_turns - 1:
            exceeded = "turns"
            break
        if step.kind == TurnKind.TOOL_CALL:
            observation = run_tool_call(step.tool, sample.video, sample.duration_s, templates, cache, budgets)
        else:
            observation = error_observation(NO_ACTION, templates)
        if observation.clip is not None:
            if len(clips) >= cfg.max_videos:
                exceeded = "videos"
                break
            clips.append(observation.clip)
        builder.add_observation(observation, force_answer=turn + 1 == cfg.max_turns - 1)
    return builder.build(exceeded=exceeded is not None, exceeded_reason=exceeded)


def safe_episode(engine: Engine, sample: Sample, tokenizer, cfg: LoopConfig, templates=None, cache=None):
    """`run_episode`, or None with the reason when the sample's video cannot be read."""
    try:
        return run_episode(engine, sample, tokenizer, cfg, templates, cache), None
    except VideoError as err:
        return None, err.reason
