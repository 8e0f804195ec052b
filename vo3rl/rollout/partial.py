"""Turns interrupted by a weight update, and their resumption: pure bookkeeping, no vLLM.

Asynchronous RL updates the rollout engine's weights while turns are being decoded. The engine aborts
the turns in flight, loads the new weights, and re-submits each turn as a continuation: its context
plus the tokens sampled so far (`TurnInFlight.kept`) as the prompt, and the remaining token budget.
The finished turn is the kept tokens followed by the continuation's, each with the log-prob of the
weights that actually sampled it (the behaviour policy the learner's importance weights need), and
the (first, last) weight versions that took part.

One subtlety: vLLM checks stop strings on the text it generated, so a stop string that began in the
kept tokens and ends in the continuation goes unseen; `cut_at_stop` finds it in the stitched text and
drops what came after it, as an uninterrupted turn would have stopped there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable

from vo3rl.agent.loop import TurnOutput, TurnRequest


@dataclass
class TurnInFlight:
    """One turn in the engine. `kept_*`: tokens sampled before an interruption, their log-probs and
    text; `seen_*`: what the current request has produced so far (its cumulative output), moved to
    `kept_*` when it is interrupted; `first_version`: the weight version that sampled the first token."""

    key: Hashable
    request: TurnRequest
    greedy: bool
    seed: int | None
    exact_tokens: bool
    first_version: int
    kept_ids: list[int] = field(default_factory=list)
    kept_logprobs: list[float] = field(default_factory=list)
    kept_text: str = ""
    seen_ids: list[int] = field(default_factory=list)
    seen_logprobs: list[float] = field(default_factory=list)
    seen_text: str = ""
    interruptions: int = 0

    @property
    def context(self) -> list[int]:
        """The prompt of the current request: the turn's context, then the tokens kept so far."""
        return list(self.request.context) + self.kept_ids

    @property
    def budget(self) -> int:
        """Tokens the current request may still generate."""
        return self.request.max_new_tokens - len(self.kept_ids)

    def interrupt(self, resume: bool) -> None:
        """The current request was aborted: keep what it sampled (`resume`) or drop the whole turn."""
        self.interruptions += 1
        if resume:
            self.kept_ids += self.seen_ids
            self.kept_logprobs += self.seen_logprobs
            self.kept_text += self.seen_text
        else:
            self.kept_ids, self.kept_logprobs, self.kept_text = [], [], ""
        self.seen_ids, self.seen_logprobs, self.seen_text = [], [], ""

    def finish(self, ids: list[int], logprobs: list[float] | None, text: str, version: int,
               decode: Callable[[list[int]], str] | None = None) -> TurnOutput:
        """The whole turn from the current request's final output. Without interruption it is that
        output unchanged."""
        if not self.kept_ids:
            return TurnOutput(list(ids), text, logprobs, (self.first_version, version))
        all_ids = self.kept_ids + list(ids)
        all_logprobs = None if logprobs is None else self.kept_logprobs + list(logprobs)
        all_text = self.kept_text + text
        if decode is not None and self.request.stop:
            all_ids, all_logprobs, all_text = cut_at_stop(all_ids, all_logprobs, all_text, self.request.stop,
                                                          len(self.kept_text), decode)
        return TurnOutput(all_ids, all_text, all_logprobs, (self.first_version, version))


def cut_at_stop(ids: list[int], logprobs: list[float] | None, text: str, stop: tuple[str, ...], kept_chars: int,
                decode: Callable[[list[int]], str]):
    """(ids, logprobs, text) cut after the first stop string that starts in the kept text and ends
    after it (the one vLLM could not see); unchanged when there is none. The cut keeps the token
    that completes the stop string, as vLLM's `include_stop_str_in_output` does."""
    ends = [text.find(s, max(0, kept_chars - len(s) + 1)) for s in stop]
    hits = [(start + len(s)) for start, s in zip(ends, stop) if 0 <= start < kept_chars < start + len(s)]
    if not hits:
        return ids, logprobs, text
    end_char = min(hits)
    for n in range(1, len(ids) + 1):
        if len(decode(ids[:n])) >= end_char:
            return ids[:n], None if logprobs is None else logprobs[:n], decode(ids[:n])
    return ids, logprobs, text
