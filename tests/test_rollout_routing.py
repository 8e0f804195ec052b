"""Routing a generate call over several engines (`vo3rl.rollout.routing`), without Ray: units,
round-robin member dealing, pinned and free pieces, the call's order."""
import pytest

from vo3rl.config.rollout import RolloutConfig
from vo3rl.rollout.routing import Piece, dealt_members, in_call_order, plan, take, unit_bounds, unit_count


def test_one_engine_runs_the_whole_call_whatever_the_routing():
    # vLLM on CPU is not batch-invariant: cutting a one-engine call would change the seeded figures.
    for routing in ("sticky", "round_robin"):
        assert plan(10, 4, 1, 4, routing) == [Piece(0, 0, 10)]
    assert plan(0, 4, 1) == [] and plan(0, 4, 3) == []


def test_units_are_contiguous_cover_every_sample_once_and_are_near_equal():
    assert unit_bounds(10, 4) == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert unit_bounds(3, 8) == [(0, 1), (1, 2), (2, 3)]  # never an empty unit
    for n_samples in range(1, 40):
        bounds = unit_bounds(n_samples, 8)
        assert bounds[0][0] == 0 and bounds[-1][1] == n_samples
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        sizes = [stop - start for start, stop in bounds]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_sticky_units_keep_every_member_of_a_group_together():
    pieces = plan(32, 16, 2, units_per_engine=4)
    assert len(pieces) == 8 and [p.unit for p in pieces] == list(range(8))
    assert all(p.members is None and p.engine is None for p in pieces)  # all members, any engine
    assert [(p.start, p.stop) for p in pieces] == [(4 * k, 4 * k + 4) for k in range(8)]


def test_units_stay_large_enough_to_batch_but_one_per_engine_at_least():
    assert unit_count(32, 16, 2, 4, min_unit_trajectories=32) == 8  # 64 trajectories a unit: 4 per engine
    assert unit_count(8, 4, 2, 4, min_unit_trajectories=32) == 2  # 32 trajectories: one share per engine
    assert unit_count(8, 4, 2, 4, min_unit_trajectories=8) == 4
    assert unit_count(1, 4, 2, 4, min_unit_trajectories=32) == 1  # never more units than samples
    assert len(plan(8, 4, 2, 4, "sticky", min_unit_trajectories=32)) == 2


def test_round_robin_deals_member_m_of_sample_i_to_engine_i_plus_m_mod_n():
    assert dealt_members(0, 4, 2, 0) == (0, 2) and dealt_members(1, 4, 2, 0) == (1, 3)
    pieces = plan(6, 4, 3, units_per_engine=1, routing="round_robin")
    runs = {}  # (sample, member) -> engine
    for piece in pieces:
        assert piece.engine is not None and len(piece.members) == piece.stop - piece.start
        for offset, members in enumerate(piece.members):
            for member in members:
                assert (piece.start + offset, member) not in runs
                runs[piece.start + offset, member] = piece.engine
    assert runs == {(i, m): (i + m) % 3 for i in range(6) for m in range(4)}


def test_round_robin_with_fewer_members_than_engines_leaves_some_samples_out_of_a_piece():
    pieces = plan(4, 1, 3, units_per_engine=1, routing="round_robin")  # units [0,1) [1,2) [2,4)
    # one member per sample: sample i on engine i mod 3; an engine with no member of a unit gets no piece,
    # one with members of some of its samples runs none of the others (empty tuples)
    assert [(p.unit, p.engine, p.members) for p in pieces] == [
        (0, 0, ((0,),)), (1, 1, ((0,),)), (2, 0, ((), (0,))), (2, 2, ((0,), ()))]


def test_a_free_engine_takes_the_first_piece_it_may_run():
    pending = [Piece(0, 0, 2, engine=1), Piece(0, 0, 2, engine=0), Piece(1, 2, 4)]
    assert take(pending, 0) == Piece(0, 0, 2, engine=0)
    assert take(pending, 0) == Piece(1, 2, 4)
    assert take(pending, 0) is None and pending == [Piece(0, 0, 2, engine=1)]
    assert take(pending, 1) == Piece(0, 0, 2, engine=1) and pending == []


def test_pieces_returned_in_any_order_come_back_in_sample_then_member_order():
    keyed = [(3, 1, "d1"), (0, 1, "a1"), (3, 0, "d0"), (0, 0, "a0"), (2, 0, "c0")]
    assert in_call_order(keyed) == ["a0", "a1", "c0", "d0", "d1"]


def test_routing_is_a_validated_recipe_key():
    assert RolloutConfig().routing == "sticky" and RolloutConfig().units_per_worker == 4
    assert RolloutConfig().min_unit_trajectories == 32
    RolloutConfig(routing="round_robin").validate()
    with pytest.raises(ValueError, match="routing must be one of"):
        RolloutConfig(routing="random").validate()
    with pytest.raises(ValueError, match="units_per_worker"):
        RolloutConfig(units_per_worker=0).validate()
    with pytest.raises(ValueError, match="routing must be one of"):
        plan(4, 2, 2, routing="random")
