"""RL maths against values worked out by hand (methods.md section 5)."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vo3rl.rl.advantages import get_advantage, grpo_advantages
from vo3rl.rl.losses import GlobalCounts, LossConfig, PolicyBatch, aggregate, get_policy_loss, kl_penalty
from vo3rl.rl.sampling import DynamicBatch, informative


def test_group_advantages_by_hand():
    # group 0: rewards 1, 0, 0, 1 -> mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = sqrt(1/3)
    # group 1: a group of one -> mean 0, std 1
    adv = grpo_advantages([1, 0, 0, 1, 2], [0, 0, 0, 0, 1])
    s = math.sqrt(1 / 3)
    np.testing.assert_allclose(adv, [0.5 / (s + 1e-6), -0.5 / (s + 1e-6), -0.5 / (s + 1e-6), 0.5 / (s + 1e-6),
                                     2 / (1 + 1e-6)])
    np.testing.assert_allclose(get_advantage("grpo_no_std")([3, 1], [7, 7]), [1.0, -1.0])
    np.testing.assert_allclose(grpo_advantages([2, 2, 2], [0, 0, 0]), [0, 0, 0])
    with pytest.raises(ValueError, match="unknown advantage"):
        get_advantage("ppo-gae")


def test_advantage_reaches_only_trained_tokens():
    """The loss gives gradient where the mask is set and nowhere else: not prompt or observation
    tokens, and nothing of an exceeded trajectory (its mask is empty)."""
    cfg = LossConfig(name="grpo", aggregation="token-mean")
    mask = [[0, 1, 1, 0, 1], [0, 0, 0, 0, 0]]
    b = batch([[-1.0] * 5, [-1.0] * 5], [[-1.0] * 5, [-1.0] * 5], [0.5, -2.0], mask)
    loss, _ = get_policy_loss("grpo")(b, cfg, GlobalCounts(tokens=3, sequences=1))
    loss.backward()
    np.testing.assert_allclose(b.logp.grad.numpy(), [[0, -0.5 / 3, -0.5 / 3, 0, -0.5 / 3], [0, 0, 0, 0, 0]])


def batch(logp, old, adv, mask, ref=None):
    t = lambda x: torch.tensor(x, dtype=torch.float64)
    return PolicyBatch(t(logp).requires_grad_(), t(old), t(adv), t(mask), None if ref is None else t(ref))


def test_grpo_clip_higher_by_hand():
    cfg = LossConfig(name="grpo", clip_low=0.2, clip_high=0.3, aggregation="token-mean")
    # three one-token sequences: r = 1.5 with A = +1 (clipped to 1.3), r = 0.5 with A = -1 (clipped to 0.8),
    # r = 1.5 with A = -1 (unclipped: pessimistic side)
    b = batch([[math.log(1.5)], [math.log(0.5)], [math.log(1.5)]], [[0.0]] * 3, [1.0, -1.0, -1.0], [[1], [1], [1]])
    loss, metrics = get_policy_loss("grpo")(b, cfg, GlobalCounts(tokens=3, sequences=3))
    assert loss.item() == pytest.approx((-1.3 + 0.8 + 1.5) / 3)
    assert metrics["clip_frac"] == pytest.approx(2 / 3)
    loss.backward()
    # clipped tokens get no gradient; the unclipped one gets d(-A r)/dlogp / 3 = r / 3
    np.testing.assert_allclose(b.logp.grad.numpy().ravel(), [0, 0, 1.5 / 3])


@pytest.mark.parametrize(
    "mode, expected",
    [("token-mean", (1 + 2 + 4) / 3), ("seq-mean-token-sum", ((1 + 2) + 4) / 2), ("seq-mean-token-mean", (1.5 + 4) / 2)],
)
def test_aggregation_modes_by_hand(mode, expected):
    values = torch.tensor([[1.0, 2.0], [4.0, 100.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    assert aggregate(values, mask, mode, GlobalCounts(tokens=3, sequences=2)).item() == pytest.approx(expected)


@pytest.mark.parametrize("name, mode", [("grpo", "token-mean"), ("gspo", "seq-mean-token-mean"),
                                        ("grpo", "seq-mean-token-sum")])
def test_micro_batches_sum_to_the_full_batch(name, mode):
    """Gradient accumulation with global counts gives the full batch's loss and gradients."""
    g = torch.Generator().manual_seed(0)
    logp = -torch.rand(4, 6, generator=g, dtype=torch.float64)
    old = logp + 0.1 * torch.randn(4, 6, generator=g, dtype=torch.float64)
    adv = torch.tensor([1.0, -0.5, 0.3, -1.2], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0]])
    cfg = LossConfig(name=name, aggregation=mode, clip_low=0.2, clip_high=0.2)
    counts = GlobalCounts(tokens=int(mask.sum()), sequences=4)
    full_logp = logp.clone().requires_grad_()
    full, _ = get_policy_loss(name)(PolicyBatch(full_logp, old, adv, mask), cfg, counts)
    full.backward()
    parts_logp = logp.clone().requires_grad_()
    total = sum(get_policy_loss(name)(PolicyBatch(parts_logp[i:i + 2], old[i:i + 2], adv[i:i + 2], mask[i:i + 2]),
                               cfg, counts)[0] for i in (0, 2))
    total.backward()
    assert total.item() == pytest.approx(full.item())
    torch.testing.assert_close(parts_logp.grad, full_logp.grad)


def test_gspo_uses_the_sequence_ratio():
    cfg = LossConfig(name="gspo", clip_low=0.2, clip_high=0.2, aggregation="seq-mean-token-mean")
    # log-ratios 0.05 and 0.15 -> sequence log-ratio 0.1 -> s = e^0.1 = 1.10517 (inside [0.8, 1.2])
    b = batch([[0.05, 0.15, 0.0]], [[0.0, 0.0, 0.0]], [2.0], [[1, 1, 0]])
    loss, metrics = get_policy_loss("gspo")(b, cfg, GlobalCounts(tokens=2, sequences=1))
    s = math.exp(0.1)
    assert loss.item() == pytest.approx(-2 * s)
    assert metrics["clip_frac"] == 0
    loss.backward()
    # d(-A s)/d logp_t = -A s / |y| on each trained token, 0 on the untrained one
    np.testing.assert_allclose(b.logp.grad.numpy().ravel(), [-2 * s / 2, -2 * s / 2, 0])
    # a sequence ratio beyond 1 + eps is clipped as a whole: log-ratios 0.3, 0.3 -> s = e^0.3 > 1.2
    b = batch([[0.3, 0.3]], [[0.0, 0.0]], [1.0], [[1, 1]])
    loss, metrics = get_policy_loss("gspo")(b, cfg, GlobalCounts(tokens=2, sequences=1))
    assert loss.item() == pytest.approx(-1.2) and metrics["clip_frac"] == 1.0


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([0.0]), torch.tensor([math.log(0.5)])
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(math.log(2))
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(0.5 + math.log(2) - 1)
    assert kl_penalty(ref, ref, "k3").item() == 0
    cfg = LossConfig(name="grpo", kl_coef=0.04, kl_estimator="k3")
    b = batch([[0.0]], [[0.0]], [0.0], [[1]], ref=[[math.log(0.5)]])
    loss, metrics = get_policy_loss("grpo")(b, cfg, GlobalCounts(1, 1))
    assert loss.item() == pytest.approx(0.04 * (0.5 + math.log(2) - 1))
    assert metrics["kl"] == pytest.approx(0.5 + math.log(2) - 1)
    with pytest.raises(ValueError):
        kl_penalty(logp, ref, "k2")


def test_dynamic_sampling_drops_flat_groups_and_refills():
    keep = informative([1, 1, 1, 0, 0.5], [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(keep, [False, False, True, True, False])

    def group(*rewards):
        return SimpleNamespace(rewards=list(rewards))

    batch_ = DynamicBatch(wanted=2, max_rounds=3)
    batch_.offer([group(1.0, 1.0), group(1.0, 0.0)])
    assert len(batch_.groups) == 1 and batch_.dropped == 1 and not batch_.done
    batch_.offer([group(0.0, 0.0), group(0.2, 0.9), group(0.0, 3.0)])
    assert batch_.done and [g.rewards for g in batch_.groups] == [[1.0, 0.0], [0.2, 0.9]] and batch_.dropped == 2
    bounded = DynamicBatch(wanted=5, max_rounds=1)
    bounded.offer([group(1.0, 1.0)])
    assert bounded.done and bounded.groups == [] and bounded.dropped == 1
