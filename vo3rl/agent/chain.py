"""V-STAR's chained questions: one conversation about one video, "what" first, then "when" and "where"
in the chain's order, each answered in one turn (no tool).

Chain 1 asks what -> when -> where (the row's `temporal_question`, then `spatial_question`); chain 2
asks what -> where -> when (`spatial_question_2`, written for a model that does not know the moment
yet, then `temporal_question`). The first turn is the protocol's free-form question on its first view
(Open-o3's grounded view, or Video-o3's global view), so both chains share it.
"""
from __future__ import annotations

from vo3rl.agent.loop import EpisodeSteps, LoopConfig, TurnRequest
from vo3rl.agent.prompts import fill
from vo3rl.agent.render import TokenBytes, TrajectoryBuilder
from vo3rl.config.prompts import PromptTemplates
from vo3rl.data.schema import Sample
from vo3rl.video.budgets import preset
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import sample_clip

CHAINS = {1: ("what", "when", "where"), 2: ("what", "where", "when")}
FOLLOW_UP_FIELDS = {(1, "when"): "temporal_question", (1, "where"): "spatial_question",
                    (2, "where"): "spatial_question_2", (2, "when"): "temporal_question"}


def chain_of_mode(mode: str) -> int | None:
    """The chain a rollout mode names ("vstar_chain1" -> 1), None for any other mode."""
    for chain in CHAINS:
        if mode == f"vstar_chain{chain}":
            return chain
    return None


def follow_up_questions(sample: Sample, chain: int, templates: PromptTemplates) -> list[str] | None:
    """The chain's second and third user turns, rendered; None when the row lacks one of them (the
    sample is not a V-STAR row, or its file left the question out)."""
    texts = []
    for step in CHAINS[chain][1:]:
        question = sample.extra.get(FOLLOW_UP_FIELDS[(chain, step)])
        if not isinstance(question, str) or not question.strip():
            return None
        texts.append(fill(templates.vstar_when if step == "when" else templates.vstar_where, question=question))
    return texts


def chain_episode(sample: Sample, follow_ups: list[str], tokenizer, cfg: LoopConfig,
                  templates: PromptTemplates | None = None, cache: DecodeCache | None = None,
                  group_index: int = 0, token_bytes: TokenBytes | None = None) -> EpisodeSteps:
    """The generator `loop.episode` is, for a chain: yields one request per question, is sent each
    answer, returns the Trajectory (one assistant turn per question answered; fewer when the context
    runs out, marked exceeded)."""
    templates = templates or PromptTemplates()
    view = "open_o3" if cfg.protocol == "open_o3" else "global"
    clip = sample_clip(sample.video, preset(view, **cfg.sampling.get(view, {})), cache)
    builder = TrajectoryBuilder(tokenizer, sample, templates, cfg.protocol, group_index, token_bytes,
                                tuple(cfg.strategies), cfg.min_segment_s)
    builder.add_prompt(clip)
    for turn in range(1 + len(follow_ups)):
        room = cfg.max_context - cfg.reserve_tokens - builder.n_tokens
        if room <= 0:
            return builder.build(exceeded=True, exceeded_reason="context")
        so_far = builder.build()
        out = yield TurnRequest(so_far.token_ids.tolist(), [clip], so_far.videos, min(cfg.max_new_tokens, room), (), turn)
        builder.add_assistant(out.token_ids, out.logprobs, versions=out.versions)
        if turn < len(follow_ups):
            builder.add_observation(follow_ups[turn])
    return builder.build()
