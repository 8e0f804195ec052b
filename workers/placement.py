"""Reserving a role's resources before its actors start: a placement group that is either ready within
`ray.placement_timeout_s` or removed, with one line saying what was asked and what the cluster has
(instead of actors that wait for resources forever).

`placement.layout: colocated` reserves one group for two roles (`colocate`): bundle i hosts learner
rank i and rollout engine i, each actor taking its share of the bundle. The learner group reserves its
ranks itself, through `place`; inside `Colocation.hosting("learner")` that call hands out the shared
bundles instead, so the learner's code is the same for both layouts.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from vo3rl.config import RecipeError


class Unplaceable(RecipeError):
    """The cluster did not grant the resources the recipe asks for in time (one line, exit 2)."""


def unplaceable_message(role: str, count: int, bundle: dict, cluster: dict, waited_s: float, hint: str) -> str:
    """Why `role` did not start, in one line: what it asked for and what the cluster has."""
    have = ", ".join(f"{cluster.get(key, 0):g} {key}" for key in bundle)
    need = ", ".join(f"{count * amount:g} {key}" for key, amount in bundle.items())
    return (f"{role}: {count} x {bundle} ({need} in all) were not placed in {waited_s:g} s; the cluster has {have} "
            f"in all (other roles hold some). {hint}, add nodes, or raise ray.placement_timeout_s if an "
            f"autoscaler is adding them")


# How each role's bundles are laid over the nodes when its caller names no strategy. Learner ranks run a
# collective every step: packed, they talk over the fastest links (NVLink inside a node). Rollout
# engines never talk to each other: spread, a lost node takes the fewest of them, and each node's
# host RAM, PCIe and network serve fewer engines. Both are best-effort: one node takes every bundle.
# Colocated bundles hold learner ranks, so they pack like the ranks alone.
ROLE_STRATEGIES = {"learner": "PACK", "rollout": "SPREAD", "colocated": "PACK"}
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")

# The part of a colocated bundle's GPU that the engine's actor asks for; the rank takes the rest. Ray only
# counts these shares (two fractions of a one-GPU bundle land on the same GPU); the memory itself is split
# by vLLM's `rollout.gpu_memory_utilization` and handed back and forth by its sleep mode.
ROLLOUT_GPU_SHARE = 0.5

# role -> the colocation whose bundles `place(role, ...)` hands out, per thread: two runs assembled at
# once in one driver must not take each other's bundles.
_hosting = threading.local()


def _hosted() -> dict[str, "Colocation"]:
    if not hasattr(_hosting, "roles"):
        _hosting.roles = {}
    return _hosting.roles


@dataclass
class Colocation:
    """`count` bundles of one placement group; `shares[role]` is what that role's actor takes of each
    (e.g. {"CPU": 1, "GPU": 0.5}); a bundle is the sum of the shares."""

    group: PlacementGroup
    count: int
    shares: dict[str, dict]

    @contextmanager
    def hosting(self, role: str):
        """While inside, `place(role, ...)` returns this group (after checking it fits) instead of reserving."""
        _hosted()[role] = self
        try:
            yield self
        finally:
            _hosted().pop(role, None)

    def claim(self, role: str, count: int, bundle: dict) -> PlacementGroup:
        """This group for `count` actors of `role` asking `bundle` each; ValueError when they do not fit
        the role's share (a wiring mistake, not the cluster's)."""
        share = self.shares.get(role, {})
        fits = count == self.count and all(amount <= share.get(key, 0) + 1e-9 for key, amount in bundle.items())
        if not fits:
            raise ValueError(f"{role}: {count} x {bundle} do not fit the colocated bundles "
                             f"({self.count} with {share} for {role})")
        return self.group

    def shutdown(self) -> None:
        """Free the bundles (and so kill every actor still in them)."""
        if self.group is not None:
            remove_placement_group(self.group)
            self.group = None


def colocated_shares(learner_cpus: float, rollout_cpus: float, gpus: float) -> dict[str, dict]:
    """Each role's part of a colocated bundle: the CPUs each asks for; of `gpus` (0 or 1) the engine
    takes ROLLOUT_GPU_SHARE and the rank the rest."""
    learner, rollout = {"CPU": learner_cpus}, {"CPU": rollout_cpus}
    if gpus:
        learner["GPU"], rollout["GPU"] = gpus * (1 - ROLLOUT_GPU_SHARE), gpus * ROLLOUT_GPU_SHARE
    return {"learner": learner, "rollout": rollout}


def colocate(count: int, learner_cpus: float, rollout_cpus: float, gpus: float, timeout_s: float) -> Colocation:
    """`count` bundles, each for one learner rank and one rollout engine (`colocated_shares`), packed;
    raises Unplaceable after `timeout_s`."""
    shares = colocated_shares(learner_cpus, rollout_cpus, gpus)
    bundle = {key: shares["learner"].get(key, 0) + shares["rollout"].get(key, 0) for key in shares["learner"]}
    group = place("colocated", count, bundle, timeout_s, "Lower learner.ranks (with rl.rollout_workers), "
                  "rollout.worker_cpus or rl.learner_gpus")
    return Colocation(group, count, shares)


def place(role: str, count: int, bundle: dict, timeout_s: float, hint: str, strategy: str | None = None) -> PlacementGroup:
    """`count` bundles of `bundle` (e.g. {"CPU": 1, "GPU": 1}) laid out by `strategy` (one of Ray's
    STRATEGIES; None: the role's in ROLE_STRATEGIES, else PACK); raises Unplaceable after `timeout_s`.
    Inside `Colocation.hosting(role)`: that colocation's group, nothing reserved."""
    hosted = _hosted().get(role)
    if hosted is not None:
        return hosted.claim(role, count, bundle)
    strategy = strategy or ROLE_STRATEGIES.get(role, "PACK")
    if strategy not in STRATEGIES:
        raise ValueError(f"placement strategy {strategy!r} for {role}: one of {', '.join(STRATEGIES)}")
    group = placement_group([dict(bundle) for _ in range(count)], strategy=strategy)
    try:
        ray.get(group.ready(), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        remove_placement_group(group)
        raise Unplaceable(unplaceable_message(role, count, bundle, ray.cluster_resources(), timeout_s, hint)) from None
    return group


def in_bundle(group: PlacementGroup, index: int) -> PlacementGroupSchedulingStrategy:
    """The scheduling strategy that puts an actor in bundle `index` of `group`."""
    return PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index)
