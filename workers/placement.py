"""Reserving a role's resources before its actors start: a placement group that is either ready within
`ray.placement_timeout_s` or removed, with one line saying what was asked and what the cluster has
(instead of actors that wait for resources forever)."""
from __future__ import annotations

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
ROLE_STRATEGIES = {"learner": "PACK", "rollout": "SPREAD"}
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


def place(role: str, count: int, bundle: dict, timeout_s: float, hint: str, strategy: str | None = None) -> PlacementGroup:
    """`count` bundles of `bundle` (e.g. {"CPU": 1, "GPU": 1}) laid out by `strategy` (one of Ray's
    STRATEGIES; None: the role's in ROLE_STRATEGIES, else PACK); raises Unplaceable after `timeout_s`."""
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
