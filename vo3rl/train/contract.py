"""The learner contract: what the SFT and RL drivers may ask of a policy learner, written once.

Implementations: `vo3rl.train.learner.Learner` (FSDP2; one rank, or the whole learner when a run has one
rank, in the calling process), its Megatron subclass `vo3rl.train.megatron.learner.MegatronLearner`, and `vo3rl.workers.learner.LearnerGroup` (the ranks of one run as Ray
actors; it splits a batch over them and merges their answers). A driver holds a `PolicyLearner` and
does not know which it got.

Units: token counts are tokens of the trajectories (prompt, assistant and observation tokens alike,
video pads included); log-probs and entropies are natural-log (nats), float32, one entry per token.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from vo3rl.train.losses import LossInputs


@runtime_checkable
class PolicyLearner(Protocol):
    """A policy with its optimizer and schedule. Calls on a multi-rank learner are collectives: every
    method is answered once, for the whole learner."""

    def train_step(self, trajectories: list, loss: str = "sft", loss_on: str = "assistant",
                   use_tdam: bool = False, inputs: LossInputs | None = None) -> dict:
        """One optimizer step over the global batch `trajectories` with the registered loss `loss`,
        trained on the tokens `loss_on` selects ("assistant" or "all"), under the TDAM attention mask
        when `use_tdam`. `inputs`: what the loss needs per trajectory (None for SFT).

        Returns metrics: `loss` (the global mean per trained token), `tokens` (real tokens forwarded),
        `padded_tokens` (tokens forwarded, padding included), `trained_tokens` (tokens carrying loss in
        the whole batch), `tdam` (1.0 or 0.0), `lr` (before the step), `grad_norm` (before clipping),
        `seconds` (wall time) and the loss's summed metrics as `sum/<name>`."""
        ...

    def logprobs(self, trajectories: list, with_entropy: bool = True, loss_on: str = "all",
                 use_tdam: bool = False) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """Per trajectory (input order), float32 [N] log-probs of each token given those before it (NaN
        where nothing is scored: the first token, and with loss_on="assistant" every non-trained token),
        and the entropies of the predictive distributions likewise (None without `with_entropy`)."""
        ...

    def reset_schedule(self, total_steps: int, lr: float | None = None, warmup_ratio: float | None = None) -> None:
        """Start a new cosine schedule of `total_steps` optimizer steps, peak `lr` (default: the
        configured one) and `warmup_ratio` of the steps warming up (default: configured)."""
        ...

    def use_tdam(self, ratio: float | None = None) -> bool:
        """Draw whether the next step trains under TDAM, with probability `ratio` (default: the
        configured `tdam_ratio`); the same seeded draw on every rank."""
        ...

    def save_checkpoint(self, path: str | Path, with_optimizer: bool = True, extra: dict | None = None) -> str:
        """Write the files of a checkpoint at `path`: HF weights and config, and each rank's optimizer
        state; `extra` is saved with it and returned by `load_checkpoint`. Returns the directory. Drivers
        go through `vo3rl.train.checkpoint.write_checkpoint`, which commits it atomically."""
        ...

    def load_checkpoint(self, path: str | Path, with_optimizer: bool = True) -> dict:
        """Load weights (and optimizer state) written by `save_checkpoint`; returns the saved extras
        (with `step`). Raises CheckpointError on an incomplete directory or another model's."""
        ...

    def export_weights(self) -> dict:
        """The full (unsharded) state dict on CPU, module key names, for the rollout engines."""
        ...

    def shutdown(self) -> None:
        """Release the learner (its processes, when it has any). Nothing may be called afterwards."""
        ...


CONTRACT_METHODS: tuple[str, ...] = tuple(
    name for name, value in vars(PolicyLearner).items() if callable(value) and not name.startswith("_"))
"""The contract's method names, in the order above."""
