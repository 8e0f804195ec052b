"""Losses the learner can step with, by name. A loss returns the SUM over its scored tokens; the
learner divides by the token count of the whole global batch, so the gradient does not depend on how
the batch was split over ranks and micro-batches. RL losses register themselves here too.

A loss may also return `(sum, metrics)`: metrics whose values ADD across micro-batches and ranks
(counts, sums, shares of a global mean); the learner reports their totals as `sum/<name>`."""
from __future__ import annotations

from typing import Callable, Protocol

import torch

from vo3rl.train.batch import Batch
from vo3rl.train.forward import TokenScores


class Loss(Protocol):
    def __call__(self, scores: TokenScores, batch: Batch, trajectories: list,
                 extras: dict) -> torch.Tensor | tuple[torch.Tensor, dict[str, float]]: ...


def split_loss_output(output) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss sum, summable metrics) from what a `Loss` returned."""
    return output if isinstance(output, tuple) else (output, {})


LOSSES: dict[str, Loss] = {}


def register_loss(name: str) -> Callable[[Loss], Loss]:
    def register(fn: Loss) -> Loss:
        LOSSES[name] = fn
        return fn

    return register


def get_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise KeyError(f"no loss named {name!r}; registered: {sorted(LOSSES)}") from None


@register_loss("sft")
def sft_loss(scores: TokenScores, batch: Batch, trajectories: list, extras: dict) -> torch.Tensor:
    """Negative log-likelihood summed over the scored (trained) tokens."""
    return -scores.logprobs.sum()
