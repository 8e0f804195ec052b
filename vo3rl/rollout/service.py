"""Samples × G -> Trajectory records: what one rollout worker does per call, free of Ray.

Every sample's first view is sampled once up front (through the decode-once cache, so its G episodes
then copy it): a sample whose video cannot be read is skipped with its reason, never raised. Each
trajectory gets `group_index` = its sample's position in the batch (plus `group_offset` when the batch
was split over workers), so the driver groups the G trajectories of a sample even when the same
sample appears twice in a batch. A call may run only some members of each group (`members`: routing
over several engines, `vo3rl.rollout.routing`); a member's seed is the same whichever engine runs it.
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field

from vo3rl.agent.chain import CHAINS, chain_episode, chain_of_mode, follow_up_questions
from vo3rl.agent.loop import LoopConfig, TurnRequest, episode
from vo3rl.agent.render import TokenBytes
from vo3rl.agent.trajectory import Trajectory
from vo3rl.config.prompts import PromptTemplates
from vo3rl.config.rollout import RolloutConfig
from vo3rl.data.schema import Sample
from vo3rl.log import ProgressLog
from vo3rl.rollout.episodes import engine_counts, run_episodes
from vo3rl.rollout.tts import TTSBatch, run_tts
from vo3rl.video.budgets import preset
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import VideoError

MODES = ("train", "eval", *(f"vstar_chain{chain}" for chain in CHAINS))


def loop_config(cfg: RolloutConfig, mode: str, presets: dict[str, dict] | None = None,
                grammar: dict | None = None) -> LoopConfig:
    """The episode limits of `mode` ("train"; "eval" and the V-STAR chains: the eval limits);
    `presets` are the recipe's sampling-preset overrides (`video.presets`), shared with the learner so
    both sample the same frames; `grammar` ({"strategies", "min_segment_s"}, from the reward config)
    the tool calls the reward accepts."""
    if mode not in MODES:
        raise ValueError(f"rollout mode must be one of {MODES}, got {mode!r}")
    turns = cfg.max_turns if mode == "train" else cfg.eval_max_turns
    return LoopConfig(max_turns=turns, max_new_tokens=cfg.max_new_tokens, max_videos=cfg.max_videos,
                      max_context=cfg.max_context, reserve_tokens=cfg.reserve_tokens,
                      sampling=dict(presets or {}), protocol=cfg.protocol, **tool_grammar(grammar))


def tool_grammar(grammar: dict | None) -> dict:
    """LoopConfig's grammar fields from a reward config's `strategies` / `min_segment_s` (None: defaults)."""
    if not grammar:
        return {}
    return {"strategies": tuple(grammar["strategies"]), "min_segment_s": float(grammar["min_segment_s"])}


@dataclass
class RolloutBatch:
    """One `generate` call's result. `trajectories`: n per kept sample, in sample order; `skipped`:
    sample id -> why its video could not be read (none of its trajectories exist); `failed`: reason ->
    count of single trajectories lost (engine refusals, a video unreadable mid-episode); `stats`:
    seconds, token counts and the prefix-cache hit rate of the call; `members`: each trajectory's
    member index in its group (parallel to `trajectories`), to put several engines' output in order."""

    trajectories: list[Trajectory] = field(default_factory=list)
    members: list[int] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)


def request_seed(base: int | None, call: int, sample_id: str, group_index: int, member: int, turn: int) -> int | None:
    """A per-request sampling seed: reproducible for the same (call, sample, member, turn), different
    across them. None when `base` is None."""
    if base is None:
        return None
    text = f"{base}|{call}|{sample_id}|{group_index}|{member}|{turn}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=4).digest(), "little") & 0x7FFFFFFF


class RolloutService:
    """Runs episodes on `engine` (a `VLLMEngine`, or anything with its stepping interface).
    `presets`: the recipe's sampling-preset overrides; `cache`: this process's decode-once cache."""

    def __init__(self, engine, tokenizer, cfg: RolloutConfig, presets: dict | None = None,
                 templates: PromptTemplates | None = None, cache: DecodeCache | None = None,
                 grammar: dict | None = None):
        cfg.validate()
        self.grammar = dict(grammar or {})
        self.engine = engine
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.presets = dict(presets or {})
        self.templates = templates or PromptTemplates()
        self.cache = cache if cache is not None else DecodeCache()
        self.token_bytes = TokenBytes(tokenizer)
        self.calls = 0

    def _first_view_error(self, sample: Sample) -> str | None:
        view = "open_o3" if self.cfg.protocol == "open_o3" else "global"
        try:
            sample_clip(sample.video, preset(view, **self.presets.get(view, {})), self.cache)
        except VideoError as err:
            return err.reason
        return None

    def generate(self, samples: list[Sample], n_per_sample: int, mode: str = "train", group_offset: int = 0,
                 members: list[list[int]] | None = None, call: int | None = None) -> RolloutBatch:
        """`n_per_sample` trajectories per sample. mode "train": the recipe's sampling and turn limit;
        "eval": greedy, the eval turn limit (its last turn forced to answer); "vstar_chain1" / "vstar_chain2":
        greedy, V-STAR's chained questions (`agent.chain`), a sample without them skipped.

        `members[k]`: the member indices (of 0..n_per_sample-1) to run for samples[k] (None: all; an empty
        list: none, its video not even read). `call`: the number seeds derive from, given by a driver that
        splits one call over several engines (None: this service's own count of such calls)."""
        loop = loop_config(self.cfg, mode, self.presets, self.grammar)
        start = time.perf_counter()
        if call is None:
            call = self.calls
            self.calls += 1
        batch = RolloutBatch()
        episodes, keyed = {}, {}
        chain = chain_of_mode(mode)
        for index, sample in enumerate(samples):
            wanted = range(n_per_sample) if members is None else members[index]
            if not wanted:
                continue
            follow_ups = follow_up_questions(sample, chain, self.templates) if chain else None
            problem = "no_vstar_questions" if chain and follow_ups is None else self._first_view_error(sample)
            if problem is not None:
                batch.skipped[sample.id] = problem
                continue
            group = group_offset + index
            for member in wanted:
                key = (index, member)
                keyed[key] = (sample, group, member)
                episodes[key] = (chain_episode(sample, follow_ups, self.tokenizer, loop, self.templates, self.cache, group,
                                               self.token_bytes) if chain else
                                 episode(sample, self.tokenizer, loop, self.templates, self.cache, group, self.token_bytes))

        def seed_for(key, turn: int) -> int | None:
            sample, group, member = keyed[key]
            return request_seed(self.cfg.seed, call, sample.id, group, member, turn)

        before = engine_counts(self.engine)
        # A long evaluation says how far it is (train calls are logged per step by the driver).
        progress = ProgressLog(f"rollout {mode} call {call}", len(episodes)) if mode != "train" else None
        outcomes = run_episodes(self.engine, episodes, self.cfg.tool_threads, greedy=mode != "train", seed_for=seed_for,
                                on_done=progress.update if progress else None)
        failed = Counter()
        for key in sorted(outcomes):
            outcome = outcomes[key]
            if outcome.trajectory is not None:
                outcome.trajectory.seconds = outcome.seconds
                batch.trajectories.append(outcome.trajectory)
                batch.members.append(key[1])
            else:
                failed[outcome.reason] += 1
        batch.failed = dict(failed)
        batch.stats = _call_stats(self.engine, before, batch, time.perf_counter() - start)
        return batch

    def tts(self, samples: list[Sample], n: int, vote: str = "confidence", group_offset: int = 0) -> TTSBatch:
        """Confidence-aware test-time scaling (`vo3rl.rollout.tts`): `n` sampled open_o3 answers per
        sample, their evidence rated by the same model, and the voted answer."""
        return run_tts(self, samples, n, vote, group_offset)

    def score(self, trajectories: list[Trajectory]) -> list:
        """The engine's log-prob of every token of each trajectory (float32 [N], NaN for the first),
        videos re-sampled from their references as the learner does."""
        requests = []
        for trajectory in trajectories:
            spans = sorted(trajectory.videos, key=lambda span: span.start)
            clips = [sample_clip(span.ref, span.spec, self.cache) for span in spans]
            requests.append(TurnRequest(trajectory.token_ids.tolist(), clips, spans, 1, (), 0))
        return self.engine.prompt_logprobs(requests)


def _call_stats(engine, before: dict, batch: RolloutBatch, seconds: float) -> dict[str, float]:
    after = engine_counts(engine)
    delta = {k: after[k] - before.get(k, 0) for k in ("requests", "prompt_tokens", "cached_tokens", "generated_tokens",
                                                       "interrupted_turns") if k in after}
    out = {"seconds": seconds, "trajectories": len(batch.trajectories), "skipped_samples": len(batch.skipped),
           "failed_trajectories": sum(batch.failed.values()), **delta}
    if delta.get("prompt_tokens"):
        out["prefix_cache_hit_rate"] = delta["cached_tokens"] / delta["prompt_tokens"]
    if seconds > 0 and "generated_tokens" in delta:
        out["generated_tokens_per_s"] = delta["generated_tokens"] / seconds
    return out
