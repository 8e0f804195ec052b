"""The RL step's glue, without Ray or models: prompt order, groups, scoring, and the learner-side loss."""
import math

import numpy as np
import pytest
import torch

from vo3rl.agent.trajectory import Role, Trajectory
from vo3rl.data.schema import DataType, Sample
from vo3rl.rewards import RewardConfig, RewardResult
from vo3rl.rl.groups import form_groups, prompts_for
from vo3rl.rl.losses import GlobalCounts, LossConfig, PolicyBatch, get_policy_loss
from vo3rl.rl.scoring import score_trajectory
from vo3rl.video.types import VideoRef


def test_prompt_order_is_a_function_of_seed_and_step():
    a = [prompts_for(step, 0, 10, 4, seed=3) for step in range(5)]
    assert a == [prompts_for(step, 0, 10, 4, seed=3) for step in range(5)]  # resumable: no hidden state
    first_epoch = a[0] + a[1] + a[2][:2]
    assert sorted(first_epoch) == list(range(10))  # an epoch visits every sample once
    assert prompts_for(0, 0, 10, 4, seed=4) != a[0]
    assert prompts_for(1, 1, 10, 4, seed=3) != a[1]  # a refill round reads other prompts
    assert prompts_for(0, 0, 0, 4, seed=3) == []


def traj(sample_id, group, roles=(0, 1, 1), texts=("<answer>A</answer>",)):
    return Trajectory(sample_id=sample_id, token_ids=np.arange(len(roles), dtype=np.int32),
                      roles=np.array(roles, dtype=np.uint8), group_index=group, assistant_texts=list(texts))


def test_groups_by_sample_and_drop_failed_rewards():
    trajectories = [traj("a", 0), traj("a", 0), traj("b", 1), traj("b", 1)]
    results = [RewardResult(1.0), RewardResult(0.0), RewardResult(1.0), RewardResult(0.0, errors={"accuracy": "boom"})]
    groups, broken = form_groups(trajectories, results)
    assert broken == 1 and len(groups) == 1
    assert [r for r, _ in groups[0]] == [1.0, 0.0]


def test_scoring_glue_scores_a_correct_answer():
    sample = Sample(id="s", question="q?", answer="B", video=VideoRef("v.mp4"), options=["A. x", "B. y"],
                    data_type=DataType.SINGLE_CLUE_NO_TOOL, duration_s=10.0, clues=[(1.0, 2.0)])
    good = traj("s", 0, texts=("<think>seen</think>\n<answer>B</answer>\n",))
    bad = traj("s", 0, texts=("<answer>A</answer>",))
    cfg = RewardConfig()
    r_good, r_bad = score_trajectory(good, sample, cfg, 0.0), score_trajectory(bad, sample, cfg, 0.0)
    # single clue, no tool, k = 0: R = 1 + 1 * (1 + 0.75)
    assert r_good.total == pytest.approx(2.75) and not r_good.errors
    assert r_bad.components["accuracy"] == 0.0


def test_policy_loss_adapter_matches_the_direct_loss():
    """Scores arrive flat (row, position) with targets at position + 1; the adapter must line up each
    trajectory's old log-probs and advantage with them and give the learner sum-normalised values."""
    import vo3rl.rl.policy_loss  # noqa: F401
    from vo3rl.train.forward import TokenScores
    from vo3rl.train.losses import get_loss as learner_loss

    roles = [(0, 0, 1, 1, 1), (0, 1, 1, 2, 1)]
    trajectories = []
    for i, r in enumerate(roles):
        t = traj("s", 0, roles=r)
        t.old_logprobs = np.array([np.nan, -0.5, -1.0, -0.2, -0.7], dtype=np.float32) - 0.1 * i
        t.advantage = [1.0, -2.0][i]
        trajectories.append(t)
    mask = torch.zeros(2, 5, dtype=torch.bool)  # position p scores token p + 1
    for row, t in enumerate(trajectories):
        trained = np.flatnonzero(t.roles == Role.ASSISTANT)
        mask[row, torch.from_numpy(trained - 1)] = True
    rows, positions = torch.nonzero(mask, as_tuple=True)
    new = torch.linspace(-1.2, -0.1, len(rows), dtype=torch.float64).requires_grad_()
    scores = TokenScores(logprobs=new, entropy=None, rows=rows, positions=positions)
    batch = type("B", (), {"target_mask": mask})()
    cfg = LossConfig(name="grpo", clip_low=0.2, clip_high=0.3)
    n_tokens = int(mask.sum())
    extras = {"loss": vars(cfg), "counts": {"tokens": n_tokens, "sequences": 2}, "global_tokens": n_tokens}
    value, summable = learner_loss("policy")(scores, batch, trajectories, extras)

    logp = torch.zeros(2, 5, dtype=torch.float64)
    old = torch.zeros(2, 5, dtype=torch.float64)
    for k, (r, p) in enumerate(zip(rows.tolist(), positions.tolist())):
        logp[r, p] = new[k].detach()
        old[r, p] = float(trajectories[r].old_logprobs[p + 1])
    direct, direct_metrics = get_policy_loss("grpo")(PolicyBatch(logp, old, torch.tensor([1.0, -2.0], dtype=torch.float64), mask),
                                                   cfg, GlobalCounts(n_tokens, 2))
    assert value.item() / n_tokens == pytest.approx(direct.item())
    assert summable["trained_tokens"] == n_tokens and summable["clipped_tokens"] == pytest.approx(direct_metrics["clip_frac"] * n_tokens)

    # Split into one micro-batch per row: the summed metrics give the whole batch's figures.
    from vo3rl.rl.policy_loss import policy_metrics
    totals: dict = {}
    for row in range(2):
        keep = rows == row
        part = TokenScores(logprobs=new.detach()[keep], entropy=None, rows=rows[keep] * 0, positions=positions[keep])
        _, m = learner_loss("policy")(part, type("B", (), {"target_mask": mask[row : row + 1]})(), [trajectories[row]], extras)
        for k, v in m.items():
            totals[f"sum/{k}"] = totals.get(f"sum/{k}", 0.0) + v
    merged = policy_metrics(totals)
    assert merged["train/pg_loss"] == pytest.approx(direct_metrics["pg_loss"])
    assert merged["train/clip_frac"] == pytest.approx(direct_metrics["clip_frac"])
    assert merged["train/ratio_mean"] == pytest.approx(direct_metrics["ratio_mean"])
    value.backward()
    assert torch.isfinite(new.grad).all() and new.grad.abs().sum() > 0
    assert not math.isnan(value.item())


def test_on_policy_loss_has_ratio_one_and_reports_entropy_and_rollout_gap():
    import vo3rl.rl.policy_loss  # noqa: F401
    from vo3rl.rl.policy_loss import policy_metrics
    from vo3rl.train.forward import TokenScores
    from vo3rl.train.losses import get_loss as learner_loss

    t = traj("s", 0, roles=(0, 0, 1, 1, 1))
    t.advantage = 1.0
    new_values = torch.tensor([-0.4, -0.9, -0.2], dtype=torch.float64)
    t.logprobs = np.array([np.nan, np.nan, -0.5, -0.9, -0.1], dtype=np.float32)  # the rollout's, targets 2..4
    mask = torch.tensor([[False, True, True, True, False]])
    rows, positions = torch.nonzero(mask, as_tuple=True)
    scores = TokenScores(new_values.clone().requires_grad_(), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
                         rows, positions)
    extras = {"loss": vars(LossConfig()), "counts": {"tokens": 3, "sequences": 1}, "global_tokens": 3,
              "on_policy": True}
    value, summable = learner_loss("policy")(scores, type("B", (), {"target_mask": mask})(), [t], extras)
    metrics = policy_metrics({f"sum/{k}": v for k, v in summable.items()})
    assert metrics["train/ratio_mean"] == 1.0 and metrics["train/clip_frac"] == 0.0
    assert value.item() == pytest.approx(-3.0)  # -A * ratio per token, summed (the learner divides by 3)
    assert metrics["train/entropy"] == pytest.approx(2.0)
    assert metrics["train/rollout_learner_logprob_gap"] == pytest.approx((0.1 + 0.0 + 0.1) / 3, abs=1e-6)


@pytest.mark.parametrize("mode", ["learner", "rollout", "on_policy"])
def test_behaviour_logprobs_come_from_the_configured_source(mode):
    from types import SimpleNamespace

    from vo3rl.rl.run_state import RunState

    calls = []

    class Learner:
        def logprobs(self, trajectories, with_entropy, loss_on, use_tdam):
            calls.append((len(trajectories), loss_on, use_tdam))
            return [np.full(len(t), -7.0, dtype=np.float32) for t in trajectories], None

    with_rollout, without = traj("s", 0), traj("s", 0)
    with_rollout.logprobs = np.full(3, -1.0, dtype=np.float32)
    state = RunState(recipe=None, cfg=SimpleNamespace(old_logprobs=mode, use_tdam=True), out=None, samples=[],
                     by_id={}, learner=Learner(), rollout=None, rewards=None, metrics=None)
    state.set_behaviour_logprobs([with_rollout, without])
    if mode == "on_policy":
        assert calls == [] and with_rollout.old_logprobs is None  # the update uses its own
    else:
        assert calls == [(2, "assistant", True)]  # the update's mask, trained tokens only
        assert float(without.old_logprobs[0]) == -7.0
        assert float(with_rollout.old_logprobs[0]) == (-1.0 if mode == "rollout" else -7.0)
