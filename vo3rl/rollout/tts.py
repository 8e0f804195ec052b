"""Confidence-aware test-time scaling on the rollout engine (Open-o3 Video, methods.md section 8).

Per sample: N open_o3 answers sampled with the recipe's sampling (TTS wants `rollout.temperature` 1;
`vo3rl eval --tts` sets it), the evidence crops of each answer cut from the very clip that answer
was written about, one greedy rating turn per answer with 1 to MAX_CROPS crops (all of them batched
on the engine like episodes), and the vote. The "majority" rule asks nothing: every weight is 1.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Generator

from vo3rl.agent.loop import TurnOutput, TurnRequest
from vo3rl.agent.parse import final_answer, parse_choice
from vo3rl.agent.rating import RATING_MAX_NEW_TOKENS, evidence_crops, rating_context
from vo3rl.agent.trajectory import Trajectory
from vo3rl.agent.voting import MAX_CROPS, confidence_weight, parse_rating, vote
from vo3rl.log import get_logger
from vo3rl.rollout.episodes import engine_counts, run_episodes
from vo3rl.video.sampler import sample_clip

log = get_logger(__name__)
VOTE_RULES = ("confidence", "majority")


@dataclass
class TTSResult:
    """One sample's test-time scaling. Per sampled answer, in sampling order: its text, the answer
    it votes for (`votable_answer`), its valid crops (MAX_CROPS + 1 stands for "more"), the model's
    rating (None: not asked, or unreadable) and its weight. `prediction` is the voted answer."""

    sample_id: str
    vote: str
    texts: list[str]
    answers: list[str | None]
    crops: list[int]
    ratings: list[int | None]
    weights: list[float]
    prediction: str | None
    trajectories: list[Trajectory] = field(default_factory=list)


@dataclass
class TTSBatch:
    """`results` in sample order (a sample that lost every answer has none); `skipped` and `failed`
    as in `RolloutBatch` (failed rating turns counted as `rating:<reason>`, their weight the fallback);
    `stats`: seconds and generated tokens of the answers and of the ratings, rating turns."""

    results: list[TTSResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)


def votable_answer(text: str | None) -> str | None:
    """What an answer votes for: the option letter of its last `<answer>`, else that answer's text
    stripped (free-form answers vote by exact text); None without an answer."""
    answer = final_answer(text)
    if not answer:
        return None
    return parse_choice(answer) or answer


def _rating_turn(request: TurnRequest) -> Generator[TurnRequest, TurnOutput, str]:
    """A one-turn "episode" for `run_episodes`: its outcome is the reply text."""
    output = yield request
    return output.text


def rating_request(sample, crops: list, tokenizer, templates) -> TurnRequest:
    """The greedy rating turn of one answer's crops (at most RATING_MAX_NEW_TOKENS tokens)."""
    context, clips = rating_context(sample, crops, tokenizer, templates)
    # No spans: crops have no file of their own, so vLLM must hash their frames to cache them.
    return TurnRequest(context, clips, [None] * len(clips), RATING_MAX_NEW_TOKENS, (), 0)


def rate(engine, requests: dict) -> dict:
    """Every rating turn of `requests` (key -> TurnRequest) batched on `engine`: key -> EpisodeOutcome
    whose `trajectory` holds the reply text (None, with a `reason`, when the engine refused it)."""
    return run_episodes(engine, {key: _rating_turn(request) for key, request in requests.items()}, threads=0,
                        greedy=True)


def run_tts(service, samples: list, n: int, vote_rule: str = "confidence", group_offset: int = 0) -> TTSBatch:
    """Test-time scaling of `samples` on `service` (a `RolloutService` of protocol open_o3)."""
    if vote_rule not in VOTE_RULES:
        raise ValueError(f"vote must be one of {VOTE_RULES}, got {vote_rule!r}")
    if n < 1:
        raise ValueError(f"test-time scaling needs n >= 1 answers per sample, got {n}")
    if service.cfg.protocol != "open_o3":
        raise ValueError(f"test-time scaling rates Open-o3 evidence: it needs rollout.protocol open_o3, "
                         f"not {service.cfg.protocol!r}")
    if service.cfg.temperature != 1.0:
        log.warning("test-time scaling samples at rollout.temperature %g; the method samples at 1",
                    service.cfg.temperature)
    start = time.perf_counter()
    sampled = service.generate(samples, n, "train", group_offset)
    by_group: dict[int, list[Trajectory]] = {}
    for trajectory in sampled.trajectories:
        by_group.setdefault(trajectory.group_index, []).append(trajectory)
    answering = time.perf_counter() - start

    requests, crop_counts = {}, {}
    for group, trajectories in by_group.items():
        sample = samples[group - group_offset]
        for member, trajectory in enumerate(trajectories):
            span = min(trajectory.videos, key=lambda video: video.start)  # the clip the answer was written about
            crops = evidence_crops(trajectory.assistant_texts[-1], sample_clip(span.ref, span.spec, service.cache))
            crop_counts[group, member] = len(crops)
            if vote_rule == "confidence" and 1 <= len(crops) <= MAX_CROPS:
                requests[group, member] = rating_request(sample, crops, service.tokenizer, service.templates)

    before = engine_counts(service.engine)
    outcomes = rate(service.engine, requests)
    after = engine_counts(service.engine)
    failed = Counter(sampled.failed)
    failed.update(f"rating:{o.reason}" for o in outcomes.values() if o.reason is not None)

    batch = TTSBatch(skipped=dict(sampled.skipped), failed=dict(failed))
    for group in sorted(by_group):
        trajectories = by_group[group]
        texts = [t.assistant_texts[-1] if t.assistant_texts else "" for t in trajectories]
        counts = [crop_counts[group, m] for m in range(len(trajectories))]
        replies = [outcomes[group, m].trajectory if (group, m) in outcomes else None for m in range(len(trajectories))]
        ratings = [parse_rating(reply) if reply is not None else None for reply in replies]
        weights = ([confidence_weight(r, c) for r, c in zip(ratings, counts)] if vote_rule == "confidence"
                   else [1.0] * len(trajectories))
        answers = [votable_answer(text) for text in texts]
        batch.results.append(TTSResult(trajectories[0].sample_id, vote_rule, texts, answers, counts, ratings,
                                       weights, vote(answers, weights), trajectories))
    rating_tokens = after.get("generated_tokens", 0) - before.get("generated_tokens", 0)
    batch.stats = {"seconds": time.perf_counter() - start, "answer_seconds": answering,
                   "answer_generated_tokens": sampled.stats.get("generated_tokens", 0),
                   "rating_turns": len(requests), "rating_generated_tokens": rating_tokens,
                   "answers": len(sampled.trajectories)}
    return batch
