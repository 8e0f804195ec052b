"""The agent loop, independent of the engine that generates: Video-o3's multi-turn crop protocol and
Open-o3 Video's single grounded turn.

One growing context: generate a turn (stopping at `</grounding>` or end of turn), parse it, run the
crop tool, append the observation, generate again, until an answer or a limit. The loop is written
once, as a generator (`episode`) that yields each turn's `TurnRequest` and is sent the generated
`TurnOutput`. `run_episode` drives it with any blocking `Engine` (one episode at a time, as tests
do); `vo3rl.rollout.episodes` drives many at once over vLLM, which batches their turns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generator, Protocol

from vo3rl.agent.parse import MIN_SEGMENT_S, NO_ACTION, STRATEGIES, TurnKind
from vo3rl.agent.render import TokenBytes, TrajectoryBuilder
from vo3rl.agent.tools import error_observation, run_tool_call
from vo3rl.agent.trajectory import Trajectory, VideoSpan
from vo3rl.config.names import PROTOCOLS
from vo3rl.config.prompts import PromptTemplates
from vo3rl.data.schema import Sample
from vo3rl.video.budgets import preset
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import Clip

STOP_STRINGS = ("</grounding>",)


@dataclass
class TurnOutput:
    """One generated turn: ids as generated (ending with the end-of-turn token if the engine stopped
    there), its text, and per-token log-probs (None when the engine does not give them). `versions`:
    the (first, last) weight versions that sampled its tokens (they differ when a weight update
    interrupted the turn and it was resumed; None when the engine does not count versions)."""

    token_ids: list[int]
    text: str
    logprobs: list[float] | None = None
    versions: tuple[int, int] | None = None


@dataclass
class TurnRequest:
    """The next turn of an episode: continue `context` (token ids, each video's pad run expanded) by
    one assistant turn of at most `max_new_tokens` tokens, stopping at any of `stop` or at end of turn.
    `clips` are the context's videos in order and `videos` their spans (references and specs);
    `turn` counts assistant turns from 0."""

    context: list[int]
    clips: list[Clip]
    videos: list[VideoSpan]
    max_new_tokens: int
    stop: tuple[str, ...]
    turn: int


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
    `sampling` overrides fields of the named sampling presets, e.g. {"global": {"max_frames": 16}}.
    `protocol` "open_o3" is one turn on the open_o3 view, no tool and no stop string."""

    max_turns: int = 8
    max_new_tokens: int = 1024
    max_videos: int = 12
    max_context: int = 32768
    reserve_tokens: int = 2000
    sampling: dict = field(default_factory=dict)
    protocol: str = "video_o3"
    # The tool-call grammar: the reward parses calls with the same two values (`reward.strategies`,
    # `reward.min_segment_s` are their one source in a recipe).
    strategies: tuple = STRATEGIES
    min_segment_s: float = MIN_SEGMENT_S


EpisodeSteps = Generator[TurnRequest, TurnOutput, Trajectory]


def episode(sample: Sample, tokenizer, cfg: LoopConfig, templates: PromptTemplates | None = None,
            cache: DecodeCache | None = None, group_index: int = 0,
            token_bytes: TokenBytes | None = None) -> EpisodeSteps:
    """One trajectory for `sample`, as a generator: yields each turn's request, is sent its output,
    returns the Trajectory. Never raises on model output; an unreadable first video raises VideoError
    at the first `next()` (the caller skips the sample)."""
    if cfg.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {cfg.protocol!r}")
    templates = templates or PromptTemplates()
    budgets = cfg.sampling
    single_turn = cfg.protocol == "open_o3"
    view = "open_o3" if single_turn else "global"
    clip = sample_clip(sample.video, preset(view, **budgets.get(view, {})), cache)
    builder = TrajectoryBuilder(tokenizer, sample, templates, cfg.protocol, group_index, token_bytes,
                                tuple(cfg.strategies), cfg.min_segment_s)
    builder.add_prompt(clip)
    clips = [clip]
    max_turns = 1 if single_turn else cfg.max_turns
    stop = () if single_turn else STOP_STRINGS
    exceeded = None
    for turn in range(max_turns):
        room = cfg.max_context - cfg.reserve_tokens - builder.n_tokens
        if room <= 0:
            exceeded = "context"
            break
        so_far = builder.build()
        out = yield TurnRequest(so_far.token_ids.tolist(), list(clips), so_far.videos,
                                min(cfg.max_new_tokens, room), stop, turn)
        step = builder.add_assistant(out.token_ids, out.logprobs, versions=out.versions)
        if step.kind == TurnKind.ANSWER or single_turn:
            break
        if turn == max_turns - 1:
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
        builder.add_observation(observation, force_answer=turn + 1 == max_turns - 1)
    return builder.build(exceeded=exceeded is not None, exceeded_reason=exceeded)


def run_episode(engine: Engine, sample: Sample, tokenizer, cfg: LoopConfig, templates: PromptTemplates | None = None,
                cache: DecodeCache | None = None) -> Trajectory:
    """`episode` driven by a blocking engine, one turn at a time."""
    steps = episode(sample, tokenizer, cfg, templates, cache)
    request = next(steps)
    while True:
        out = engine.generate(request.context, request.clips, request.max_new_tokens, request.stop)
        try:
            request = steps.send(out)
        except StopIteration as finished:
            return finished.value

