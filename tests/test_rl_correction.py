"""Off-policy correction (`rl.loss.is_correction`, `is_cap`): truncated importance weights of the proximal
over the behaviour (rollout) policy, per token or per sequence, detached, and absent by default."""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_loss_safeguards import DEMO
from test_rl_glue import traj
from test_rl_math import batch

from vo3rl.agent.trajectory import Role
from vo3rl.config import RecipeError, load_recipe
from vo3rl.config.rl import LossConfig, RLConfig
from vo3rl.rl.losses import GlobalCounts, get_policy_loss, truncated_is_weights
from vo3rl.rl.policy_loss import PolicyLossInputs, policy_loss, policy_metrics
from vo3rl.train.forward import TokenScores

F64 = dict(dtype=torch.float64)


def weights(log_ratios, mask, level, cap=5.0, clamp=20.0):
    """Weights for prox - behav = log_ratios (behav 0), as float64 [B, L]."""
    prox = torch.tensor(log_ratios, **F64)
    return truncated_is_weights(prox, torch.zeros_like(prox), torch.tensor(mask), level, cap, clamp)


def test_token_weights_are_the_exact_ratio_below_the_cap_and_the_cap_above():
    log_ratios = np.linspace(-3.0, 3.0, 25)
    w = weights([log_ratios.tolist()], [[True] * 25], "token", cap=2.0)
    assert (w <= 2.0).all()
    below = np.exp(log_ratios) < 2.0
    np.testing.assert_allclose(w[0].numpy()[below], np.exp(log_ratios[below]), rtol=1e-14)
    assert (w[0].numpy()[~below] == 2.0).all()


def test_token_and_sequence_levels_by_hand():
    # row 0: trained log-ratios 0.5 and -0.2 (sum 0.3), an untrained 9.0; row 1: 1.0 + 1.0 = 2 -> e^2 > cap 5
    log_ratios, mask = [[0.5, -0.2, 9.0], [1.0, 1.0, 0.0]], [[True, True, False], [True, True, False]]
    token = weights(log_ratios, mask, "token")
    expected = [[math.exp(0.5), math.exp(-0.2), 1.0], [math.e, math.e, 1.0]]  # untrained: 1
    torch.testing.assert_close(token, torch.tensor(expected, **F64))
    seq = weights(log_ratios, mask, "sequence")
    torch.testing.assert_close(seq, torch.tensor([[math.exp(0.3)] * 2 + [1.0], [5.0, 5.0, 1.0]], **F64))


def test_a_missing_behaviour_logprob_counts_as_ratio_one_and_huge_logs_do_not_overflow():
    prox = torch.tensor([[0.4, 0.7, 1000.0], [0.4, 0.7, 0.0]], **F64)
    behav = torch.tensor([[math.nan, 0.0, 0.0], [0.0, 0.0, math.nan]], **F64)
    mask = torch.ones(2, 3, dtype=torch.bool)
    token = truncated_is_weights(prox, behav, mask, "token", 1e12, 20.0)
    torch.testing.assert_close(token, torch.tensor([[1.0, math.exp(0.7), math.exp(20.0)],
                                                    [math.exp(0.4), math.exp(0.7), 1.0]], **F64))
    seq = truncated_is_weights(prox, behav, mask, "sequence", 1e12, 20.0)
    torch.testing.assert_close(seq[1], torch.full((3,), math.exp(1.1), **F64))  # the NaN adds no factor
    assert seq[0].tolist() == [math.exp(20.0)] * 3  # log sum 1000.7 clamped to 20 before exp
    with pytest.raises(ValueError, match="unknown is_correction 'tokens'"):
        truncated_is_weights(prox, behav, mask, "tokens", 2.0, 20.0)


def test_weights_are_detached_and_scale_each_tokens_gradient():
    prox = torch.tensor([[0.3, -0.4]], **F64, requires_grad=True)
    w = truncated_is_weights(prox, torch.zeros_like(prox), torch.ones(1, 2), "token", 5.0, 20.0)
    assert not w.requires_grad
    # ratio 1 (no PPO clip): d loss / d logp_t = -A w_t / tokens; a weight that carries grad gets none
    cfg, counts = LossConfig(is_correction="token"), GlobalCounts(tokens=2, sequences=1)
    plain = batch([[-1.0, -2.0]], [[-1.0, -2.0]], [1.5], [[1, 1]])
    weighted = replace(batch([[-1.0, -2.0]], [[-1.0, -2.0]], [1.5], [[1, 1]]), is_weight=w.clone().requires_grad_())
    for b in (plain, weighted):
        get_policy_loss("grpo")(b, cfg, counts)[0].backward()
    torch.testing.assert_close(weighted.logp.grad, plain.logp.grad * w)
    assert weighted.is_weight.grad is None


def test_batch_statistics_count_trained_tokens_at_the_cap():
    w = torch.tensor([[0.5, 2.0, 9.0], [2.0, 1.0, 1.0]], **F64)  # cap 2: two trained tokens at it; 9 untrained
    b = replace(batch([[-1.0] * 3] * 2, [[-1.0] * 3] * 2, [1.0, -1.0], [[1, 1, 0], [1, 1, 0]]), is_weight=w)
    _, metrics = get_policy_loss("grpo")(b, LossConfig(is_correction="token", is_cap=2.0), GlobalCounts(4, 2))
    assert metrics["is_weight_mean"] == pytest.approx((0.5 + 2.0 + 2.0 + 1.0) / 4)
    assert metrics["is_clip_frac"] == 0.5
    merged = policy_metrics({"sum/trained_tokens": 8.0, "sum/is_weight_sum": 10.0, "sum/is_clipped_tokens": 2.0})
    assert merged["train/is_weight_mean"] == 1.25 and merged["train/is_clip_frac"] == 0.25
    assert not any(k.startswith("train/is_") for k in policy_metrics({"sum/trained_tokens": 8.0}))


ROLES = [(0, 0, 1, 1, 1), (0, 1, 1, 2, 1)]


def scored(trajectories, new_values):
    """The learner's scores for `trajectories`: targets are the assistant tokens, scored at position - 1."""
    mask = torch.zeros(len(trajectories), len(trajectories[0]), dtype=torch.bool)
    for row, t in enumerate(trajectories):
        mask[row, torch.from_numpy(np.flatnonzero(t.roles == Role.ASSISTANT) - 1)] = True
    rows, positions = torch.nonzero(mask, as_tuple=True)
    logprobs = torch.tensor(new_values, **F64).requires_grad_()
    return TokenScores(logprobs, None, rows, positions), type("B", (), {"target_mask": mask})()


def rollout_trajectories(behaviour):
    trajectories = [traj("s", 0, roles=r) for r in ROLES]
    for t, row in zip(trajectories, behaviour):
        t.logprobs = np.array([np.nan, *row], dtype=np.float32)
    return trajectories


@pytest.mark.parametrize("name", ["grpo", "gspo"])
def test_none_leaves_the_loss_and_gradients_bit_for_bit(name):
    trajectories = rollout_trajectories([[-0.5, -1.0, -0.2, -0.7], [-0.6, -1.1, -0.3, -0.8]])
    old = [np.array([np.nan, -0.4, -0.9, -0.3, -0.6], dtype=np.float32)] * 2
    new = [-0.45, -0.8, -0.35, -0.3, -0.9, -0.5]
    results = []
    for cfg in (LossConfig(name=name), LossConfig(name=name, is_correction="none", is_cap=7.0)):
        scores, b = scored(trajectories, new)
        inputs = PolicyLossInputs.build(trajectories, cfg, [1.0, -2.0], old, None, on_policy=False, with_entropy=False)
        value, summable = policy_loss(scores, b, trajectories, inputs)
        value.backward()
        results.append((value.detach(), scores.logprobs.grad, summable))
    # the reference: the loss without the weight field at all, on the same aligned tensors
    scores, b = scored(trajectories, new)
    logp = torch.zeros(2, 5, **F64).index_put((scores.rows, scores.positions), scores.logprobs)
    prox = torch.zeros(2, 5, **F64)
    prox[scores.rows, scores.positions] = torch.from_numpy(old[0][scores.positions.numpy() + 1]).double()
    counts = GlobalCounts(tokens=6, sequences=2)
    direct, _ = get_policy_loss(name)(batch(logp.tolist(), prox.tolist(), [1.0, -2.0], b.target_mask.tolist()),
                                      LossConfig(name=name), counts)
    for value, grad, summable in results:
        assert torch.equal(value, results[0][0]) and torch.equal(grad, results[0][1])
        assert value.item() == (direct * counts.tokens).item()
        assert not any(k.startswith("is_") for k in summable)


@pytest.mark.parametrize("level", ["token", "sequence"])
def test_policy_loss_weights_against_the_rollout_logprobs(level):
    # proximal (learner) - behaviour (rollout) at the 6 trained targets: row 0: 0.1, 0.1, -0.1; row 1: 1.0, 0.5, 0.2
    trajectories = rollout_trajectories([[-0.5, -1.0, -0.2, -0.7], [-1.4, -1.5, -0.3, -1.0]])
    old = [np.array([np.nan, 0.0, -0.9, -0.1, -0.8], dtype=np.float32),
           np.array([np.nan, -0.4, -1.0, 0.0, -0.8], dtype=np.float32)]
    cfg = LossConfig(is_correction=level, is_cap=2.0)
    inputs = PolicyLossInputs.build(trajectories, cfg, [1.0, -2.0], old, None, on_policy=False, with_entropy=False)
    new = [-0.9, -0.1, -0.8, -0.4, -1.0, -0.8]  # = old: ratio 1, no PPO clip: the loss is -A w per token
    scores, b = scored(trajectories, new)
    value, summable = policy_loss(scores, b, trajectories, inputs)
    logs = [[0.1, 0.1, -0.1], [1.0, 0.5, 0.2]]
    if level == "token":
        w = [[min(math.exp(x), 2.0) for x in row] for row in logs]
    else:
        w = [[min(math.exp(sum(row)), 2.0)] * 3 for row in logs]  # row 1: e^1.7 = 5.47 -> 2
    expected = -sum(w[0]) + 2.0 * sum(w[1])
    assert value.item() == pytest.approx(expected, rel=1e-5)
    merged = policy_metrics({f"sum/{k}": v for k, v in summable.items()})
    assert merged["train/is_weight_mean"] == pytest.approx(sum(map(sum, w)) / 6, rel=1e-5)
    assert merged["train/is_clip_frac"] == pytest.approx(sum(x == 2.0 for row in w for x in row) / 6)
    # one micro-batch per row: the summed figures are the whole batch's
    totals: dict = {}
    for row in range(2):
        part, part_b = scored([trajectories[row]], new[3 * row: 3 * row + 3])
        _, m = policy_loss(part, part_b, [trajectories[row]], inputs.select([row]))
        for k, v in m.items():
            totals[f"sum/{k}"] = totals.get(f"sum/{k}", 0.0) + v
    assert policy_metrics(totals)["train/is_weight_mean"] == pytest.approx(merged["train/is_weight_mean"])
    assert policy_metrics(totals)["train/is_clip_frac"] == pytest.approx(merged["train/is_clip_frac"])


def test_on_policy_weights_use_this_forwards_logprobs_and_missing_rollout_logprobs_are_refused():
    trajectories = rollout_trajectories([[-0.5, -1.0, -0.2, -0.7], [-0.6, -1.1, -0.3, -0.8]])
    cfg = LossConfig(is_correction="token", is_cap=10.0)
    inputs = PolicyLossInputs.build(trajectories, cfg, [1.0, 1.0], None, None, on_policy=True, with_entropy=False)
    new = [-0.9, -0.1, -0.5, -0.5, -1.0, -0.6]  # prox - behav: 0.1, 0.1, 0.2, 0.1, 0.1, 0.2
    value, summable = policy_loss(*scored(trajectories, new), trajectories, inputs)
    assert value.item() == pytest.approx(-sum(math.exp(x) for x in (0.1, 0.1, 0.2) * 2), rel=1e-5)
    assert summable["is_clipped_tokens"] == 0.0
    trajectories[1].logprobs = None
    with pytest.raises(ValueError, match="is_correction = 'token' needs the rollout's log-probs.*'s' has none"):
        policy_loss(*scored(trajectories, new), trajectories, inputs)


def test_defaults_and_recipe_keys():
    assert (LossConfig().is_correction, LossConfig().is_cap) == ("none", 2.0)
    recipe = load_recipe(DEMO, ["rl.loss.is_correction=sequence", "rl.loss.is_cap=5"])
    assert (recipe.rl.loss.is_correction, recipe.rl.loss.is_cap) == ("sequence", 5.0)
    with pytest.raises(RecipeError, match="rl.loss.is_cap = 0.0: must be > 0"):
        load_recipe(DEMO, ["rl.loss.is_cap=0"])


@pytest.mark.parametrize("key, value, message", [
    ("is_correction", "tokens", "rl.loss.is_correction = 'tokens': must be one of none, token, sequence"),
    ("is_correction", "", "rl.loss.is_correction = '': must be one of none, token, sequence"),
    ("is_cap", 0.0, "rl.loss.is_cap = 0.0: must be > 0 (a ratio, typically 2 to 10)"),
    ("is_cap", -2.0, "rl.loss.is_cap = -2.0: must be > 0 (a ratio, typically 2 to 10)"),
    ("is_cap", math.nan, "rl.loss.is_cap = nan: must be > 0 (a ratio, typically 2 to 10)"),
])
def test_bad_correction_values_are_refused(key, value, message):
    with pytest.raises(ValueError) as err:
        RLConfig(loss=LossConfig(**{key: value})).validate()
    assert str(err.value) == message
