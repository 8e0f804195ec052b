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
    assert groups[0].rewards == [1.0, 0.0]


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
    from vo3rl.rl.policy_loss import PolicyLossInputs, policy_loss, policy_metrics
    from vo3rl.train.forward import TokenScores

    roles = [(0, 0, 1, 1, 1), (0, 1, 1, 2, 1)]
    trajectories = [traj("s", 0, roles=r) for r in roles]
    old_logprobs = [np.array([np.nan, -0.5, -1.0, -0.2, -0.7], dtype=np.float32) - 0.1 * i for i in range(2)]
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
    inputs = PolicyLossInputs.build(trajectories, cfg, [1.0, -2.0], old_logprobs, None, on_policy=False,
                                    with_entropy=False)
    assert inputs.counts == GlobalCounts(tokens=n_tokens, sequences=2)
    value, summable = policy_loss(scores, batch, trajectories, inputs)

    logp = torch.zeros(2, 5, dtype=torch.float64)
    old = torch.zeros(2, 5, dtype=torch.float64)
    for k, (r, p) in enumerate(zip(rows.tolist(), positions.tolist())):
        logp[r, p] = new[k].detach()
        old[r, p] = float(old_logprobs[r][p + 1])
    direct, direct_metrics = get_policy_loss("grpo")(PolicyBatch(logp, old, torch.tensor([1.0, -2.0], dtype=torch.float64), mask),
                                                   cfg, GlobalCounts(n_tokens, 2))
    assert value.item() / n_tokens == pytest.approx(direct.item())
    assert summable["trained_tokens"] == n_tokens and summable["clipped_tokens"] == pytest.approx(direct_metrics["clip_frac"] * n_tokens)

    # Split into one micro-batch per row: the summed metrics give the whole batch's figures.
    totals: dict = {}
    for row in range(2):
        keep = rows == row
        part = TokenScores(logprobs=new.detach()[keep], entropy=None, rows=rows[keep] * 0, positions=positions[keep])
        _, m = policy_loss(part, type("B", (), {"target_mask": mask[row : row + 1]})(), [trajectories[row]],
                           inputs.select([row]))
        for k, v in m.items():
            totals[f"sum/{k}"] = totals.get(f"sum/{k}", 0.0) + v
    merged = policy_metrics(totals)
    assert merged["train/pg_loss"] == pytest.approx(direct_metrics["pg_loss"])
    assert merged["train/clip_frac"] == pytest.approx(direct_metrics["clip_frac"])
    assert merged["train/ratio_mean"] == pytest.approx(direct_metrics["ratio_mean"])
    value.backward()
    assert torch.isfinite(new.grad).all() and new.grad.abs().sum() > 0
    assert not math.isnan(value.item())
    with pytest.raises(ValueError, match="needs PolicyLossInputs"):
        policy_loss(scores, batch, trajectories, None)


def test_policy_loss_inputs_select_and_cross_processes():
    import pickle

    from vo3rl.rl.policy_loss import PolicyLossInputs

    trajectories = [traj("a", 0), traj("b", 0, roles=(0, 0, 0)), traj("c", 1)]
    old = [np.array([np.nan, -0.5, -0.25], dtype=np.float32) * (i + 1) for i in range(3)]
    inputs = PolicyLossInputs.build(trajectories, LossConfig(kl_coef=0.1), [0.5, 0.0, -1.0], old, old,
                                    on_policy=False, with_entropy=True)
    assert inputs.counts == GlobalCounts(tokens=4, sequences=2)  # "b" trains no token
    part = inputs.select([2, 0])
    assert part.advantages == [-1.0, 0.5] and part.old_logprobs[0] is old[2] and part.ref_logprobs[1] is old[0]
    assert part.counts == inputs.counts and part.loss == inputs.loss and part.with_entropy
    back = pickle.loads(pickle.dumps(part))
    assert back.advantages == part.advantages and back.counts == part.counts and back.loss == part.loss
    for a, b in zip(back.old_logprobs + back.ref_logprobs, part.old_logprobs + part.ref_logprobs):
        np.testing.assert_array_equal(a, b)
    assert pickle.loads(pickle.dumps(inputs.select([]))).advantages == []
    with pytest.raises(ValueError, match="2 advantages for 3 trajectories"):
        PolicyLossInputs.build(trajectories, LossConfig(), [1.0, 2.0], None, None, on_policy=True, with_entropy=False)


def test_on_policy_loss_has_ratio_one_and_reports_entropy_and_rollout_gap():
    from vo3rl.rl.policy_loss import PolicyLossInputs, policy_loss, policy_metrics
    from vo3rl.train.forward import TokenScores

    t = traj("s", 0, roles=(0, 0, 1, 1, 1))
    new_values = torch.tensor([-0.4, -0.9, -0.2], dtype=torch.float64)
    t.logprobs = np.array([np.nan, np.nan, -0.5, -0.9, -0.1], dtype=np.float32)  # the rollout's, targets 2..4
    mask = torch.tensor([[False, True, True, True, False]])
    rows, positions = torch.nonzero(mask, as_tuple=True)
    scores = TokenScores(new_values.clone().requires_grad_(), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
                         rows, positions)
    inputs = PolicyLossInputs.build([t], LossConfig(), [1.0], None, None, on_policy=True, with_entropy=True)
    assert inputs.counts == GlobalCounts(tokens=3, sequences=1)
    value, summable = policy_loss(scores, type("B", (), {"target_mask": mask})(), [t], inputs)
    metrics = policy_metrics({f"sum/{k}": v for k, v in summable.items()})
    assert metrics["train/ratio_mean"] == 1.0 and metrics["train/clip_frac"] == 0.0
    assert value.item() == pytest.approx(-3.0)  # -A * ratio per token, summed (the learner divides by 3)
    assert metrics["train/entropy"] == pytest.approx(2.0)
    assert metrics["train/rollout_learner_logprob_gap"] == pytest.approx((0.1 + 0.0 + 0.1) / 3, abs=1e-6)
