"""Losses the learner can step with, by name (`LOSSES`). A loss returns the SUM over its scored tokens;
the learner divides by the token count of the whole global batch, so the gradient does not depend on
how the batch was split over ranks and micro-batches.

Only "sft" is built in. A loss that needs more than the scored tokens (the RL policy loss) is added by
its package with an explicit call (`vo3rl.rl.policy_loss.register_rl_losses`), never as a side effect
of an import, and reads what it needs from the `LossInputs` the caller passed to `train_step`.

A loss may also return `(sum, metrics)`: metrics whose values ADD across micro-batches and ranks
(counts, sums, shares of a global mean); the learner reports their totals as `sum/<name>`."""
from __future__ import annotations

from typing import Protocol

import torch

from vo3rl.registry import Registry
from vo3rl.train.batch import Batch
from vo3rl.train.forward import TokenScores


class LossInputs(Protocol):
    """What a loss needs beyond the scored tokens, one entry per trajectory of the step's batch (e.g.
    `vo3rl.rl.policy_loss.PolicyLossInputs`). The learner hands each micro-batch `select(its indices)`;
    a rank group hands each rank `select(that rank's indices)`.

    `with_entropy`: the loss wants the entropy (nats) of each scored token in `TokenScores.entropy`."""

    with_entropy: bool

    def select(self, indices: list[int]) -> "LossInputs":
        """The inputs of the trajectories at `indices` (positions in this batch), in that order.
        Batch-wide values (global counts, configuration) are kept as they are."""
        ...


class Loss(Protocol):
    def __call__(self, scores: TokenScores, batch: Batch, trajectories: list,
                 inputs: LossInputs | None) -> torch.Tensor | tuple[torch.Tensor, dict[str, float]]: ...


def split_loss_output(output) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss sum, summable metrics) from what a `Loss` returned."""
    return output if isinstance(output, tuple) else (output, {})


LOSSES: Registry[Loss] = Registry("loss")
register_loss = LOSSES.register


def get_loss(name: str) -> Loss:
    """The loss registered as `name`; raises UnknownName (a KeyError) listing the registered ones."""
    return LOSSES.get(name)


@register_loss("sft")
def sft_loss(scores: TokenScores, batch: Batch, trajectories: list, inputs: LossInputs | None) -> torch.Tensor:
    """Negative log-likelihood summed over the scored (trained) tokens; `inputs` are not used."""
    return -scores.logprobs.sum()
