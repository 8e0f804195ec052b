"""The recipe's `placement:` section: how the RL stage's learner ranks and rollout engines share the
cluster's GPUs, and the rules a colocated layout must meet (checked at load time with the sections they
involve: `rl`, `learner.ranks`, `rollout`)."""
from __future__ import annotations

from dataclasses import dataclass

from vo3rl.config.rules import raise_first_broken

LAYOUTS = ("separate", "colocated")
SLEEP_LEVELS = (1, 2)


@dataclass
class PlacementConfig:
    """`layout` "separate" (the default): the learner ranks and the rollout engines hold GPUs of their
    own, in two placement groups (ranks packed, engines spread). "colocated": learner rank i and rollout
    engine i share one placement bundle (one node, one GPU on a GPU cluster; each actor takes a fraction
    of it), and the engines give their GPU memory back during the update (vLLM's sleep mode) and take it
    again before the weight sync (`docs/scale_out.md`, Layouts).

    `sleep_level` (colocated only): vLLM's sleep level. 1 copies the weights to host memory and drops
    the KV cache; 2 drops both (the buffers are kept). The weight sync that follows every update
    overwrites every weight, so level 2 (the default) skips copying them to host memory and back each
    step and loses nothing (level 1 keeps host RAM for them: 16.6 GB per engine for the 7B recipe)."""

    layout: str = "separate"
    sleep_level: int = 2

    def validate(self) -> None:
        raise_first_broken("placement", [
            (self.layout in LAYOUTS, "layout", self.layout, f"one of {', '.join(LAYOUTS)}"),
            (self.sleep_level in SLEEP_LEVELS, "sleep_level", self.sleep_level,
             "1 (weights to host memory, KV cache dropped) or 2 (both dropped)"),
        ])

    @property
    def colocated(self) -> bool:
        return self.layout == "colocated"


def colocation_problems(placement: PlacementConfig, rl, learner_ranks: int, rollout) -> list[str]:
    """Why the recipe cannot colocate (empty when it can, or when its layout is separate). `rl` is the
    RLConfig, `rollout` the RolloutConfig. The first broken rule only: each one assumes the ones before."""
    if not placement.colocated:
        return []
    engines, ranks = rl.rollout_workers, learner_ranks
    engine_gpus, rank_gpus = engines * rollout.worker_gpus, ranks * rl.learner_gpus
    rules = [
        (rl.mode == "sync", f"rl.mode = {rl.mode!r}: must be sync (one_step_off and async generate while the "
         "learner trains, so the engines could never give their memory back)"),
        (engine_gpus == rank_gpus, f"rl.rollout_workers x rollout.worker_gpus = {engines} x {rollout.worker_gpus:g} = "
         f"{engine_gpus:g} GPUs: must equal learner.ranks x rl.learner_gpus = {ranks} x {rl.learner_gpus:g} = "
         f"{rank_gpus:g} (the engines run on the learner's GPUs)"),
        (engines == ranks, f"rl.rollout_workers = {engines}: must equal learner.ranks = {ranks} (each learner "
         "rank shares its bundle with one engine)"),
        (rl.learner_gpus in (0, 1), f"rl.learner_gpus = {rl.learner_gpus:g}: must be 0 or 1 (a rank and its engine "
         "split one GPU; Ray's fractional GPU shares never span two GPUs)"),
        (rollout.tensor_parallel_size == 1, f"rollout.tensor_parallel_size = {rollout.tensor_parallel_size}: must be "
         "1 (an engine lives on its rank's one GPU)"),
    ]
    for ok, message in rules:
        if not ok:
            return [f"placement.layout = 'colocated': {message}"]
    return []
