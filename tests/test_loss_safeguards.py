"""verl's safeguards on the policy loss (`rl.loss.log_ratio_clamp`, `kl_clamp`, `dual_clip`): extremes are
bounded, ordinary values are untouched, and each bad value is refused with a one-line message."""
import math
from pathlib import Path

import pytest
import torch

from vo3rl.config import RecipeError, load_recipe
from vo3rl.config.rl import LossConfig, RLConfig
from vo3rl.rl.losses import GlobalCounts, PolicyBatch, get_policy_loss, kl_penalty
from vo3rl.rl.policy_loss import policy_metrics

DEMO = Path(__file__).resolve().parents[1] / "recipes" / "tiny_cpu" / "demo.yaml"


def one_token_batch(log_ratios, advantages, dtype=torch.float32):
    """One trained token per sequence with logp - old_logp = log_ratios[i] and advantage advantages[i]."""
    logp = torch.tensor([[x] for x in log_ratios], dtype=dtype).requires_grad_()
    old = torch.zeros_like(logp).detach()
    adv = torch.tensor(advantages, dtype=dtype)
    return PolicyBatch(logp, old, adv, torch.ones_like(old))


@pytest.mark.parametrize("name", ["grpo", "gspo"])
@pytest.mark.parametrize("advantage", [1.0, -1.0])
def test_a_huge_log_ratio_gives_a_finite_loss_and_gradient(name, advantage):
    # exp(1000) overflows float32 (and float64); without the clamp the loss is inf and, for A < 0 without
    # dual clip, so is the gradient
    cfg = LossConfig(name=name, dual_clip=None)
    b = one_token_batch([1000.0, -1000.0, 0.1], [advantage] * 3)
    loss, metrics = get_policy_loss(name)(b, cfg, GlobalCounts(tokens=3, sequences=3))
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(b.logp.grad).all()
    assert metrics["ratio_mean"] == pytest.approx((math.exp(20) + math.exp(-20) + math.exp(0.1)) / 3, rel=1e-5)
    # beyond the clamp the ratio is constant: no gradient; the ordinary token keeps its gradient
    assert b.logp.grad[0, 0] == 0 and b.logp.grad[1, 0] == 0 and b.logp.grad[2, 0] != 0


def test_the_log_ratio_clamp_is_the_recipe_value():
    b = one_token_batch([7.0], [-1.0])
    loss, _ = get_policy_loss("grpo")(b, LossConfig(log_ratio_clamp=5.0, dual_clip=None), GlobalCounts(1, 1))
    assert loss.item() == pytest.approx(math.exp(5.0), rel=1e-6)


def test_gspo_clamps_the_sequence_ratio():
    # two tokens with log-ratios 30 and 20: log s = 25 > 20 -> s = e^20, A < 0 -> loss = -A s = e^20
    logp = torch.tensor([[30.0, 20.0]], dtype=torch.float64).requires_grad_()
    b = PolicyBatch(logp, torch.zeros_like(logp).detach(), torch.tensor([-1.0], dtype=torch.float64),
                    torch.ones(1, 2, dtype=torch.float64))
    cfg = LossConfig(name="gspo", aggregation="seq-mean-token-mean", dual_clip=None)
    loss, _ = get_policy_loss("gspo")(b, cfg, GlobalCounts(tokens=2, sequences=1))
    loss.backward()
    assert loss.item() == pytest.approx(math.exp(20))
    assert (logp.grad == 0).all()


def test_k3_at_extreme_values_is_bounded_by_kl_clamp_with_a_finite_gradient():
    logp = torch.tensor([0.0, 0.0, 0.0, 0.0], requires_grad=True)
    ref = torch.tensor([1000.0, 5.0, -1000.0, math.log(0.5)])
    kl = kl_penalty(logp, ref, "k3", log_ratio_clamp=20.0, kl_clamp=10.0)
    kl.sum().backward()
    assert torch.isfinite(logp.grad).all()
    # e^20 - 21 and 1000 + e^-1000 - 1 are cut to 10; e^5 - 6 = 142.4 too; the ordinary one is exact
    assert kl.tolist()[:3] == [10.0, 10.0, 10.0]
    assert kl[3].item() == pytest.approx(0.5 + math.log(2) - 1)
    assert (logp.grad[:3] == 0).all() and logp.grad[3] != 0
    # unbounded, the same inputs overflow
    assert not torch.isfinite(kl_penalty(logp.detach(), ref, "k3")).all()


def test_kl_clamp_reaches_the_loss():
    logp = torch.tensor([[0.0]], requires_grad=True)
    b = PolicyBatch(logp, logp.detach(), torch.tensor([0.0]), torch.ones(1, 1), torch.tensor([[50.0]]))
    cfg = LossConfig(kl_coef=0.5, kl_estimator="low_var_kl", kl_clamp=4.0)
    loss, metrics = get_policy_loss("grpo")(b, cfg, GlobalCounts(1, 1))
    assert metrics["kl"] == pytest.approx(4.0) and loss.item() == pytest.approx(0.5 * 4.0)


@pytest.mark.parametrize("name", ["grpo", "gspo"])
def test_dual_clip_bounds_a_negative_advantage_at_minus_a_c(name):
    # A = -2, r = 10: PPO clip gives max(20, 2 * 1.3) = 20; dual clip c = 3 bounds it at 6, with no gradient
    b = one_token_batch([math.log(10.0)], [-2.0], dtype=torch.float64)
    cfg = LossConfig(name=name, dual_clip=3.0)
    loss, metrics = get_policy_loss(name)(b, cfg, GlobalCounts(1, 1))
    loss.backward()
    assert loss.item() == pytest.approx(2.0 * 3.0)
    assert b.logp.grad.item() == 0.0
    assert metrics["dual_clip_frac"] == 1.0
    # off (null or 0): the paper's objective, -A r = 20, gradient -A r = 20
    for off in (None, 0.0):
        b = one_token_batch([math.log(10.0)], [-2.0], dtype=torch.float64)
        loss, metrics = get_policy_loss(name)(b, LossConfig(name=name, dual_clip=off), GlobalCounts(1, 1))
        loss.backward()
        assert loss.item() == pytest.approx(20.0) and b.logp.grad.item() == pytest.approx(20.0)
        assert metrics["dual_clip_frac"] == 0.0


def test_dual_clip_leaves_positive_advantages_and_ratios_below_c_alone():
    # r = 10, 0.5, 2 with A = +1, -1, -1 and c = 3: none is beyond the dual bound
    ratios, advantages = [10.0, 0.5, 2.0], [1.0, -1.0, -1.0]
    results = []
    for dual_clip in (3.0, None):
        b = one_token_batch([math.log(r) for r in ratios], advantages, dtype=torch.float64)
        loss, metrics = get_policy_loss("grpo")(b, LossConfig(dual_clip=dual_clip), GlobalCounts(3, 3))
        loss.backward()
        results.append((loss.item(), b.logp.grad.clone(), metrics["clip_frac"], metrics["dual_clip_frac"]))
    (loss_on, grad_on, clip_on, dual_on), (loss_off, grad_off, clip_off, _) = results
    assert loss_on == pytest.approx(loss_off) == pytest.approx((-1.3 + 0.8 + 2.0) / 3)
    torch.testing.assert_close(grad_on, grad_off)
    assert clip_on == clip_off == pytest.approx(2 / 3) and dual_on == 0.0


def test_dual_clip_frac_counts_only_trained_tokens_and_reaches_the_step_metrics():
    # one sequence, two tokens at r = 10 with A = -1: one trained, one not
    logp = torch.tensor([[math.log(10.0), math.log(10.0)]], requires_grad=True)
    b = PolicyBatch(logp, torch.zeros_like(logp).detach(), torch.tensor([-1.0]), torch.tensor([[1.0, 0.0]]))
    _, metrics = get_policy_loss("grpo")(b, LossConfig(), GlobalCounts(tokens=1, sequences=1))
    assert metrics["dual_clip_frac"] == 1.0
    merged = policy_metrics({"sum/trained_tokens": 4.0, "sum/dual_clipped_tokens": 1.0, "sum/clipped_tokens": 2.0})
    assert merged["train/dual_clip_frac"] == 0.25 and merged["train/clip_frac"] == 0.5


def test_defaults_are_verls():
    cfg = LossConfig()
    assert (cfg.log_ratio_clamp, cfg.kl_clamp, cfg.dual_clip) == (20.0, 10.0, 3.0)


@pytest.mark.parametrize("key, value, message", [
    ("log_ratio_clamp", 0.0, "rl.loss.log_ratio_clamp = 0.0: must be > 0 (nats)"),
    ("log_ratio_clamp", -5.0, "rl.loss.log_ratio_clamp = -5.0: must be > 0 (nats)"),
    ("kl_clamp", 0.0, "rl.loss.kl_clamp = 0.0: must be > 0 (nats)"),
    ("dual_clip", 1.0, "rl.loss.dual_clip = 1.0: must be > 1 (or 0 / null: off)"),
    ("dual_clip", 0.5, "rl.loss.dual_clip = 0.5: must be > 1 (or 0 / null: off)"),
    ("dual_clip", -3.0, "rl.loss.dual_clip = -3.0: must be > 1 (or 0 / null: off)"),
])
def test_each_safeguard_refuses_a_bad_value_naming_key_value_and_rule(key, value, message):
    with pytest.raises(ValueError) as err:
        RLConfig(loss=LossConfig(**{key: value})).validate()
    assert str(err.value) == message


@pytest.mark.parametrize("value", [None, 0.0, 1.5, 3.0])
def test_dual_clip_accepts_off_and_values_above_one(value):
    RLConfig(loss=LossConfig(dual_clip=value)).validate()


def test_safeguards_load_from_a_recipe_and_refuse_on_the_command_line():
    recipe = load_recipe(DEMO, ["rl.loss.dual_clip=null", "rl.loss.kl_clamp=2", "rl.loss.log_ratio_clamp=8"])
    assert (recipe.rl.loss.dual_clip, recipe.rl.loss.kl_clamp, recipe.rl.loss.log_ratio_clamp) == (None, 2.0, 8.0)
    with pytest.raises(RecipeError) as err:
        load_recipe(DEMO, ["rl.loss.dual_clip=0.9"])
    assert "rl.loss.dual_clip = 0.9: must be > 1 (or 0 / null: off)" in str(err.value)
    assert "\n" not in str(err.value)
