"""Packing: several trajectories in one row give the same per-trajectory log-probs, SFT loss and
update as one padded row each (trajectories with videos), under SDPA's block-diagonal boolean mask and
FlexAttention's document mask; the groups respect the token budget; the token counts stay truthful."""
import warnings

import numpy as np
import pytest
import torch
from learner_fixtures import trajectory, write_colour_mp4

from vo3rl.config.learner import LearnerConfig
from vo3rl.train.packing import pack_groups, plan_micro_batches

FP32_ATOL = 2e-5  # nats: a packed row's attention sums over other block sizes than a padded one


def test_pack_groups_fill_rows_within_the_budget():
    lengths = [700, 100, 300, 650, 1200, 250, 50]
    groups = pack_groups(lengths, token_budget=1000)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        assert sum(lengths[i] for i in group) <= 1000 or len(group) == 1
    assert [4] in groups  # longer than the budget: a row of its own
    assert groups == [[4], [0, 2], [3, 5, 1], [6]]  # first fit, longest first: deterministic
    assert plan_micro_batches(lengths, 1000, pack=True) == groups
    assert len(plan_micro_batches(lengths, 1000, pack=False)) > len(groups)


@pytest.fixture(scope="module")
def trajs(tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("packing")
    videos = [write_colour_mp4(str(folder / f"v{i}.mp4"), seed=i) for i in range(2)]
    return [trajectory(tokenizer, videos[0]),
            trajectory(tokenizer, videos[1], sample_id="s2", answer_text="B, the blue one"),
            trajectory(tokenizer, videos[0], sample_id="s3", answer_text="A")]


def _learner(model_dir, tokenizer, **overrides):
    from vo3rl.train.learner import Learner

    cfg = LearnerConfig(**{"lr": 1e-3, "warmup_ratio": 0.0, "micro_batch_tokens": 1000, "attention": "sdpa"}
                        | overrides)
    return Learner(model_dir, cfg, total_steps=4, tokenizer=tokenizer)


def test_a_packed_batch_keeps_each_trajectorys_positions_and_targets(tiny_model_dir, tokenizer, trajs):
    from vo3rl.train.batch import build_batch

    learner = _learner(tiny_model_dir, tokenizer)
    videos, _ = learner.videos.inputs(trajs)
    padded = build_batch(trajs, videos, learner.pad_id, learner.tokens_per_second)
    packed = build_batch(trajs, videos, learner.pad_id, learner.tokens_per_second, pack=True)
    total = sum(len(t) for t in trajs)
    assert packed.input_ids.shape == (1, total) and packed.attention_mask.shape == (1, 1, total, total)
    assert torch.equal(packed.targets, padded.targets) and torch.equal(packed.target_mask, padded.target_mask)
    for index, seg in enumerate(packed.layout.segments):
        span = slice(seg.start, seg.start + seg.length)
        assert torch.equal(packed.input_ids[0, span], padded.input_ids[index, : seg.length])
        assert torch.equal(packed.position_ids[:, 0, span], padded.position_ids[:, index, : seg.length])
        # It sees its own tokens only.
        assert not packed.attention_mask[0, 0, span, : seg.start].any()


@pytest.fixture(scope="module")
def padded_reference(tiny_model_dir, tokenizer, trajs):
    """Log-probs and entropies (assistant tokens: the full-vocabulary head at every position would
    dominate the test's time) and the SFT step of one padded row per trajectory."""
    learner = _learner(tiny_model_dir, tokenizer, micro_batch_tokens=100_000)
    logprobs = learner.logprobs(trajs, loss_on="assistant")
    metrics = learner.train_step(trajs)
    return logprobs, metrics, _some_weights(learner)


def _some_weights(learner):
    layers = learner.model.model.language_model.layers
    return [layers[0].mlp.up_proj.weight.detach().clone(), layers[-1].self_attn.q_proj.weight.detach().clone()]


def test_packing_gives_the_padded_logprobs_loss_and_update(tiny_model_dir, tokenizer, trajs, padded_reference):
    (lp_pad, ent_pad), pad_metrics, pad_weights = padded_reference
    # A budget of ~two trajectories: rows [longest, next] and [last], so rows hold different numbers.
    budget = sorted(len(t) for t in trajs)[-1] + sorted(len(t) for t in trajs)[-2]
    learner = _learner(tiny_model_dir, tokenizer, micro_batch_tokens=budget, packing=True)
    assert len(learner._micro_batches(trajs, use_tdam=False)) == 2
    lp_pack, ent_pack = learner.logprobs(trajs, loss_on="assistant")
    for a, b, c, d in zip(lp_pad, lp_pack, ent_pad, ent_pack):
        assert (~np.isnan(a)).sum() > 20
        np.testing.assert_allclose(a, b, atol=FP32_ATOL, equal_nan=True)
        np.testing.assert_allclose(c, d, atol=FP32_ATOL, equal_nan=True)
    metrics = learner.train_step(trajs)
    assert metrics["loss"] == pytest.approx(pad_metrics["loss"], rel=1e-5)
    assert metrics["trained_tokens"] == pad_metrics["trained_tokens"]
    # Counts: the same real tokens; packed rows carry no padding, the padded row does.
    assert metrics["tokens"] == pad_metrics["tokens"] == sum(len(t) for t in trajs)
    assert metrics["padded_tokens"] == metrics["tokens"] < pad_metrics["padded_tokens"]
    for a, b in zip(_some_weights(learner), pad_weights):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    # A TDAM step never packs: its rows stay padded (one trajectory per row, blocks on).
    batches = [batch for _, _, batch in learner._batches(trajs, "assistant", use_tdam=True)]
    assert batches and all(not b.layout.is_packed and b.layout.has_blocks for b in batches)


def test_flex_document_mask_gives_the_padded_logprobs(tiny_model_dir, tokenizer, trajs, padded_reference):
    (lp_pad, _), _, _ = padded_reference
    learner = _learner(tiny_model_dir, tokenizer, micro_batch_tokens=100_000, packing=True, attention="flex")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the eager CPU FlexAttention warns that it is unfused
        lp_pack, _ = learner.logprobs(trajs, with_entropy=False, loss_on="assistant")
    for a, b in zip(lp_pad, lp_pack):
        np.testing.assert_allclose(a, b, atol=FP32_ATOL, equal_nan=True)


def test_packing_keeps_the_policy_loss_per_trajectory(tiny_model_dir, tokenizer, trajs):
    """GSPO's sequence-level ratio and the advantages are per trajectory: packed or not, same loss."""
    from vo3rl.config.rl import LossConfig
    from vo3rl.rl.policy_loss import PolicyLossInputs, policy_metrics, register_rl_losses

    register_rl_losses()
    out = []
    for packing in (False, True):
        learner = _learner(tiny_model_dir, tokenizer, micro_batch_tokens=100_000, packing=packing)
        old, _ = learner.logprobs(trajs, with_entropy=False, loss_on="assistant")
        # Behaviour log-probs a little off the policy's own, so ratios differ from 1 per sequence.
        old = [lp - 0.05 * (i + 1) for i, lp in enumerate(old)]
        inputs = PolicyLossInputs.build(trajs, LossConfig(name="gspo", aggregation="seq-mean-token-mean"),
                                        [1.0, -0.5, 0.25], old, None, on_policy=False, with_entropy=False)
        out.append((learner.train_step(trajs, loss="policy", inputs=inputs), _some_weights(learner)))
    (padded, w_padded), (packed, w_packed) = out
    assert policy_metrics(packed)["train/ratio_mean"] == pytest.approx(policy_metrics(padded)["train/ratio_mean"],
                                                                       rel=1e-5)
    assert packed["loss"] == pytest.approx(padded["loss"], rel=1e-5, abs=1e-7)
    for a, b in zip(w_packed, w_padded):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
