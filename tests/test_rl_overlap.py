"""The overlapped RL modes over plain fake services (no Ray, no model): one_step_off trains each step on
the sync mode's prompts, sampled one weight version earlier; async never trains on a group older than
`rl.max_staleness`, keeps a group whole, resumes at the first round no step took; per-turn version tags."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from test_rl_step import FakeLearner, FakeRewards, FakeRollout, sample
from vo3rl.agent.trajectory import Trajectory
from vo3rl.config.rl import RLConfig
from vo3rl.rewards import RewardResult
from vo3rl.rl.groups import Group, Scored
from vo3rl.rl.overlap import admit, staleness, step_runner
from vo3rl.rl.step import PromptSet, StepServices


class VersionedRollout(FakeRollout):
    """Tags each trajectory's single turn with the weight version it was sampled with; `delay_s`
    per generate call makes the producer slower or faster than the learner."""

    def __init__(self, delay_s: float = 0.0, flat=frozenset()):
        super().__init__(flat)
        self.version, self.delay_s, self.versions_seen = 0, delay_s, []
        self.lock = threading.Lock()

    def generate(self, samples, n_per_sample, mode):
        with self.lock:
            version = self.version
        time.sleep(self.delay_s)
        out = super().generate(samples, n_per_sample, mode)
        for t in out:
            t.turn_versions = [(version, version)]
        self.versions_seen.append(version)
        return out

    def update_weights(self, weights, version=None):
        with self.lock:
            self.version = version
        super().update_weights(weights, version)


class SlowLearner(FakeLearner):
    def __init__(self, delay_s: float = 0.0):
        super().__init__()
        self.delay_s = delay_s

    def train_step(self, trajectories, **kwargs):
        time.sleep(self.delay_s)
        return super().train_step(trajectories, **kwargs)


def run_steps(mode: str, steps: int, rollout, learner, start: int = 0, state=None, **cfg):
    prompts = PromptSet([sample(i) for i in range(8)], seed=1)
    config = RLConfig(steps=steps, prompts_per_step=2, group_size=4, old_logprobs="on_policy", mode=mode, **cfg)
    runner = step_runner(config, prompts, StepServices(rollout, FakeRewards(), learner), start, state)
    try:
        results = [runner.run(step) for step in range(start, steps)]
        runner.pause()
        return results, runner.driver_state()
    finally:
        runner.close()


def test_one_step_off_trains_the_sync_prompts_one_version_late():
    sync, _ = run_steps("sync", 4, VersionedRollout(), FakeLearner())
    rollout = VersionedRollout()
    off, _ = run_steps("one_step_off", 4, rollout, FakeLearner())
    assert [r.metrics["batch/prompt_ids"] for r in off] == [r.metrics["batch/prompt_ids"] for r in sync]
    # step 0 is collected with version 0 before any update; step n >= 1 with version n - 1
    assert [r.metrics["async/staleness_max"] for r in off] == [0.0, 1.0, 1.0, 1.0]
    assert rollout.versions_seen == [0, 0, 1, 2]
    assert [w for w in rollout.weights] == [{"w": 1}, {"w": 2}, {"w": 3}, {"w": 4}]


@pytest.mark.parametrize("bound", [1, 2])
def test_async_never_trains_a_group_older_than_the_bound_and_runs_ahead_up_to_it(bound):
    # a fast producer and a slow learner: the producer runs ahead only as far as the bound allows
    rollout, learner = VersionedRollout(delay_s=0.0), SlowLearner(delay_s=0.05)
    results, _ = run_steps("async", 6, rollout, learner, max_staleness=bound, queue_size=4, max_refill_rounds=6)
    ages = []
    for step, (trained, *_rest) in enumerate(learner.trained):
        ages += [step - t.oldest_version for t in trained]
    assert max(ages) == bound  # as far ahead as allowed, never further
    assert sum(r.metrics["async/groups_stale"] for r in results) == 0  # so nothing generated is wasted
    assert all(len(trained) % 4 == 0 for trained, *_ in learner.trained)  # whole groups of G = 4


def test_async_refills_still_respect_the_bound():
    # flat groups are dropped and refilled: steps take more than one round, so rounds wait longer
    rollout, learner = VersionedRollout(flat={"s1", "s2", "s5"}), SlowLearner(delay_s=0.03)
    results, _ = run_steps("async", 6, rollout, learner, max_staleness=1, queue_size=3, max_refill_rounds=4)
    for step, (trained, *_rest) in enumerate(learner.trained):
        assert all(step - t.oldest_version <= 1 for t in trained)
    assert sum(r.metrics["batch/refill_rounds"] for r in results) > 0


def test_async_with_bound_zero_trains_only_on_the_current_weights():
    rollout, learner = VersionedRollout(delay_s=0.01), SlowLearner(delay_s=0.02)
    run_steps("async", 3, rollout, learner, max_staleness=0, queue_size=2, max_refill_rounds=8)
    for step, (trained, *_rest) in enumerate(learner.trained):
        assert {t.oldest_version for t in trained} == {step}


def test_async_resumes_at_the_first_round_no_step_took():
    _, state = run_steps("async", 2, VersionedRollout(), FakeLearner(), max_staleness=4)
    assert state["next_round"] == 2  # every round of these informative fakes fills a step
    resumed, _ = run_steps("async", 3, VersionedRollout(), FakeLearner(), start=2, state=state, max_staleness=4)
    again, _ = run_steps("async", 3, VersionedRollout(), FakeLearner(), max_staleness=4)
    assert resumed[0].metrics["batch/prompt_ids"] == again[2].metrics["batch/prompt_ids"]


def test_a_failing_producer_stops_the_step_with_its_error():
    class Broken(VersionedRollout):
        def generate(self, samples, n_per_sample, mode):
            raise OSError("engine gone")

    with pytest.raises(RuntimeError, match="engine gone"):
        run_steps("async", 1, Broken(), FakeLearner())


def scored(version: int | None) -> Scored:
    t = Trajectory("s", np.zeros(2, np.int32), np.array([0, 1], np.uint8))
    if version is not None:
        t.turn_versions = [(version, version + 1), (version + 1, version + 1)]
    return Scored(t, RewardResult(0.0, {"total": 0.0}))


def test_staleness_counts_from_the_oldest_turn_of_any_member():
    group = Group([scored(3), scored(5)])
    assert staleness(group, 6) == 3
    assert staleness(Group([scored(None)]), 6) == 0  # no versions recorded: nothing to measure
    fresh, dropped = admit([group, Group([scored(5)])], version=6, max_staleness=2)
    assert len(fresh) == 1 and fresh[0].members[0].trajectory.oldest_version == 5 and dropped == 1


def test_mode_keys_are_checked():
    for bad in ({"mode": "fast"}, {"max_staleness": -1}, {"queue_size": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RLConfig(**bad).validate()
