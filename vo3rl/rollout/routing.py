"""Which engine runs which trajectories of one generate call over several engines; free of Ray.

A call asks for G members (trajectories) of each of S samples. With one engine it stays one piece, the
whole call: vLLM on CPU is not batch-invariant, so cutting it would change the seeded figures. With n
engines the samples are cut into `units_per_engine * n` work units, contiguous runs of samples, and
the rollout group deals them from a queue to whichever engine is free next (load balancing: a slow
engine or long episodes do not leave the others idle). Fewer when a unit would hold fewer than
`min_unit_trajectories` trajectories, never fewer than one per engine: an engine runs one unit at a
time, so a small unit is a small in-engine batch, and on CPU a decode step costs nearly the same for 4
sequences as for 16 (measured: 8-trajectory units took 1.9x as long as 16-trajectory shares,
docs/rollout.md "Several engines").

- "sticky": a unit holds every member of its samples, so a group's members, which share the prompt
  prefix, run on one engine and the prefix cache computes that prefix once.
- "round_robin": member m of sample i runs on engine (i + m) mod n, so the prefix is computed on
  several engines; it exists to measure what stickiness buys. Each unit becomes one piece per engine,
  pinned to it (no load balancing: moving a piece would change the dealing).

A trajectory's sampling seed is a function of (call, sample id, group index, member, turn)
(`vo3rl.rollout.service.request_seed`), none of which depends on the routing: pieces keep the call's
group indices (`start` is the group offset) and name their members by their index in the group.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, TypeVar

from vo3rl.config.rollout import ROUTINGS

T = TypeVar("T")


@dataclass(frozen=True)
class Piece:
    """What one engine call runs: samples [start, stop) of the generate call (`start` is their group
    offset), `members[k]` the member indices run for sample start + k (None: all of them; an empty
    tuple: none, the sample is not looked at), `engine` the engine it must run on (None: any), `unit`
    the work unit it belongs to (a skipped sample is counted once per unit)."""

    unit: int
    start: int
    stop: int
    members: tuple[tuple[int, ...], ...] | None = None
    engine: int | None = None


def unit_bounds(n_samples: int, n_units: int) -> list[tuple[int, int]]:
    """[start, stop) of `n_units` contiguous runs of samples as equal as can be (fewer when there are
    fewer samples; none for no samples)."""
    n_units = min(max(1, n_units), n_samples)
    cuts = [n_samples * k // n_units for k in range(n_units + 1)] if n_units else []
    return list(zip(cuts, cuts[1:]))


def unit_count(n_samples: int, n_per_sample: int, n_engines: int, units_per_engine: int,
               min_unit_trajectories: int = 1) -> int:
    """How many units a call of `n_samples` x `n_per_sample` is cut into on `n_engines` (see above)."""
    by_size = n_samples * n_per_sample // max(1, min_unit_trajectories)
    return min(n_samples, max(n_engines, min(n_engines * units_per_engine, by_size)))


def dealt_members(sample: int, n_per_sample: int, n_engines: int, engine: int) -> tuple[int, ...]:
    """The members of sample `sample` (its position in the call) that round-robin routing sends to `engine`."""
    return tuple(member for member in range(n_per_sample) if (sample + member) % n_engines == engine)


def plan(n_samples: int, n_per_sample: int, n_engines: int, units_per_engine: int = 4,
         routing: str = "sticky", min_unit_trajectories: int = 1) -> list[Piece]:
    """The pieces of a generate call of `n_samples` samples x `n_per_sample` members over `n_engines`,
    in unit order. One engine: one piece, the whole call, whatever the routing."""
    if routing not in ROUTINGS:
        raise ValueError(f"routing must be one of {ROUTINGS}, got {routing!r}")
    if n_engines <= 1:
        return [Piece(0, 0, n_samples)] if n_samples else []
    units = unit_bounds(n_samples, unit_count(n_samples, n_per_sample, n_engines, units_per_engine,
                                              min_unit_trajectories))
    if routing == "sticky":
        return [Piece(unit, start, stop) for unit, (start, stop) in enumerate(units)]
    pieces = []
    for unit, (start, stop) in enumerate(units):
        for engine in range(n_engines):
            members = tuple(dealt_members(i, n_per_sample, n_engines, engine) for i in range(start, stop))
            if any(members):
                pieces.append(Piece(unit, start, stop, members, engine))
    return pieces


def take(pending: list[Piece], engine: int) -> Piece | None:
    """Remove and return the first pending piece `engine` may run (pinned to it or to none), else None."""
    for position, piece in enumerate(pending):
        if piece.engine is None or piece.engine == engine:
            return pending.pop(position)
    return None


def in_call_order(keyed: Iterable[tuple[int, int, T]]) -> list[T]:
    """Items keyed (group index, member) in the call's order: by sample, then member, as one engine
    returns them."""
    return [item for _, _, item in sorted(keyed, key=lambda entry: (entry[0], entry[1]))]
