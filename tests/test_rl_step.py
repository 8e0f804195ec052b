"""The RL step over plain fake services: no Ray, no model. What reaches the learner, in what order,
with which advantages and behaviour log-probs; dynamic sampling; the weight sync."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vo3rl.agent.trajectory import Trajectory
from vo3rl.config.rl import RLConfig
from vo3rl.data.schema import Sample
from vo3rl.rewards import RewardResult
from vo3rl.rl.step import PromptSet, StepServices, behaviour_logprobs, reference_logprobs, rl_step
from vo3rl.video.types import VideoRef


def sample(i: int) -> Sample:
    return Sample(id=f"s{i}", question="q?", answer="A", video=VideoRef(f"v{i}.mp4"), options=["A. x", "B. y"])


class FakeRollout:
    """Trajectory k of a group answers correctly when k is even, unless the sample is flat (all wrong)."""

    def __init__(self, flat: set[str] = frozenset()):
        self.flat, self.calls, self.weights = set(flat), [], []

    def generate(self, samples, n_per_sample, mode):
        self.calls.append(([s.id for s in samples], n_per_sample, mode))
        out = []
        for index, s in enumerate(samples):
            for k in range(n_per_sample):
                right = k % 2 == 0 and s.id not in self.flat
                t = Trajectory(sample_id=s.id, token_ids=np.arange(4, dtype=np.int32),
                               roles=np.array([0, 1, 1, 1], dtype=np.uint8), group_index=index,
                               assistant_texts=["<answer>A</answer>" if right else "<answer>B</answer>"])
                t.logprobs = np.array([np.nan, -1.0, -1.0, -1.0], dtype=np.float32)
                out.append(t)
        return out

    def update_weights(self, weights, version=None):
        self.weights.append(weights)


class FakeRewards:
    def score(self, trajectories, samples, progress):
        values = [1.0 if "A" in t.assistant_texts[0] else 0.0 for t in trajectories]
        return [RewardResult(v, {"total": v, "accuracy": v}) for v in values]


class FakeLearner:
    def __init__(self):
        self.trained, self.logprob_calls = [], []

    def logprobs(self, trajectories, with_entropy=True, loss_on="all", use_tdam=False):
        self.logprob_calls.append((len(trajectories), loss_on, use_tdam))
        return [np.full(len(t), -7.0, dtype=np.float32) for t in trajectories], None

    def train_step(self, trajectories, loss="sft", loss_on="assistant", use_tdam=False, inputs=None):
        self.trained.append((list(trajectories), loss, loss_on, inputs))
        return {"loss": 0.5, "grad_norm": 1.0, "sum/trained_tokens": 3.0 * len(trajectories)}

    def export_weights(self):
        return {"w": len(self.trained)}


def services(rollout=None, learner=None):
    return StepServices(rollout=rollout or FakeRollout(), rewards=FakeRewards(), learner=learner or FakeLearner())


def test_one_step_trains_every_kept_group_with_its_advantages_and_syncs():
    prompts = PromptSet([sample(i) for i in range(4)], seed=3)
    cfg = RLConfig(steps=1, prompts_per_step=2, group_size=4, old_logprobs="learner")
    svc = services()
    result = rl_step(0, cfg, prompts, svc)
    (trained, loss, loss_on, inputs), = svc.learner.trained
    assert loss == "policy" and loss_on == "assistant" and len(trained) == 8
    # GRPO: rewards 1, 0, 1, 0 in each group -> +-1/std with the unbiased std of [1, 0, 1, 0]
    expected = 0.5 / np.std([1, 0, 1, 0], ddof=1)
    np.testing.assert_allclose(inputs.advantages, [expected, -expected] * 4, rtol=1e-5)
    assert [t.sample_id for t in trained] == [i for i in result.metrics["batch/prompt_ids"] for _ in range(4)]
    assert all(float(lp[1]) == -7.0 for lp in inputs.old_logprobs)  # recomputed by the learner
    assert svc.rollout.weights == [{"w": 1}]  # the update's weights reached the engines
    assert result.metrics["batch/groups_kept"] == 2 and len(result.scored) == 8
    assert result.metrics["train/advantage_abs"] == pytest.approx(expected, rel=1e-5)
    assert set(result.metrics) >= {"time/rollout_s", "time/reward_s", "time/update_s", "time/sync_s", "reward/total"}
    assert result.metrics["reward/accuracy"] == 0.5
    assert not hasattr(trained[0], "advantage")  # training state lives in the step's records


def test_flat_groups_are_dropped_and_refilled_then_no_update_when_nothing_is_informative():
    prompts = PromptSet([sample(i) for i in range(4)], seed=0)
    cfg = RLConfig(steps=4, prompts_per_step=2, group_size=2, max_refill_rounds=2)
    rollout = FakeRollout(flat={s.id for s in prompts.samples})
    svc = services(rollout)
    result = rl_step(0, cfg, prompts, svc)
    assert len(rollout.calls) == 3  # the first round and two refills
    assert svc.learner.trained == [] and rollout.weights == []
    assert result.metrics["batch/groups_dropped"] == 6 and result.metrics["batch/refill_rounds"] == 2


@pytest.mark.parametrize("mode", ["learner", "rollout", "on_policy"])
def test_behaviour_logprobs_come_from_the_configured_source(mode):
    learner = FakeLearner()
    with_rollout = Trajectory("s", np.arange(3, dtype=np.int32), np.array([0, 1, 1], dtype=np.uint8))
    without = Trajectory("s", np.arange(3, dtype=np.int32), np.array([0, 1, 1], dtype=np.uint8))
    with_rollout.logprobs = np.full(3, -1.0, dtype=np.float32)
    cfg = SimpleNamespace(old_logprobs=mode, use_tdam=True)
    old = behaviour_logprobs(cfg, learner, [with_rollout, without])
    if mode == "on_policy":
        assert old is None and learner.logprob_calls == []  # the update uses its own
    else:
        assert learner.logprob_calls == [(2, "assistant", True)]  # the update's mask, trained tokens only
        assert float(old[1][0]) == -7.0
        assert float(old[0][0]) == (-1.0 if mode == "rollout" else -7.0)
    assert reference_logprobs(cfg, None, [without]) is None


def test_rollout_logprobs_are_used_without_a_learner_pass_when_every_trajectory_has_them():
    learner = FakeLearner()
    t = Trajectory("s", np.arange(3, dtype=np.int32), np.array([0, 1, 1], dtype=np.uint8))
    t.logprobs = np.full(3, -2.0, dtype=np.float32)
    old = behaviour_logprobs(SimpleNamespace(old_logprobs="rollout", use_tdam=False), learner, [t])
    assert learner.logprob_calls == [] and float(old[0][2]) == -2.0
