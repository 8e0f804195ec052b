"""The learner on one rank: loss only on assistant tokens, micro-batching that does not change the
gradient, checkpoints that round-trip exactly and refuse what they cannot load."""
import json

import numpy as np
import pytest
import torch
from learner_fixtures import trajectory, write_colour_mp4

from vo3rl.agent.trajectory import Role
from vo3rl.config.learner import LearnerConfig
from vo3rl.train.checkpoint import hf_dir, write_checkpoint


@pytest.fixture(scope="module")
def trajs(tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("learner")
    video = write_colour_mp4(str(folder / "a.mp4"))
    other = write_colour_mp4(str(folder / "b.mp4"), seed=1)
    return [trajectory(tokenizer, video), trajectory(tokenizer, other, sample_id="s2", answer_text="B, the blue one")]


def _learner(model_dir, tokenizer, **overrides):
    from vo3rl.train.learner import Learner

    cfg = LearnerConfig(**{"lr": 1e-3, "warmup_ratio": 0.0, "freeze_vision": True} | overrides)
    return Learner(model_dir, cfg, total_steps=10, tokenizer=tokenizer)


def _final_hidden_grads(learner, trajs, loss_on):
    """d loss / d (final hidden state) per position of the first row: the LM head is the only user of
    the final hidden state of a position, so this is zero exactly where no target is scored."""
    from vo3rl.train.batch import build_batch, n_trained_tokens
    from vo3rl.train.forward import score_targets
    from vo3rl.train.losses import sft_loss

    captured = {}

    def keep(module, inputs, out):
        out.retain_grad()
        captured["h"] = out

    handle = learner.model.model.language_model.norm.register_forward_hook(keep)
    videos, _ = learner.videos.inputs(trajs[:1])
    batch = build_batch(trajs[:1], videos, learner.pad_id, learner.tokens_per_second, loss_on)
    sft_loss(score_targets(learner.model, batch), batch, trajs[:1], None).backward()
    handle.remove()
    learner.optimizer.zero_grad(set_to_none=True)
    assert n_trained_tokens(trajs[:1], loss_on) == batch.n_targets
    return captured["h"].grad[0].abs().sum(-1)


def test_loss_is_on_assistant_tokens_only(tiny_model_dir, tokenizer, trajs):
    learner = _learner(tiny_model_dir, tokenizer)
    roles = trajs[0].roles
    grads = _final_hidden_grads(learner, trajs, "assistant")
    # Position i predicts token i+1.
    next_role = np.append(roles[1:], Role.PROMPT)
    observation = next_role == Role.OBSERVATION
    assert observation.sum() > 10
    assert float(grads[torch.from_numpy(observation)].max()) == 0.0
    assert float(grads[torch.from_numpy(next_role == Role.PROMPT)].max()) == 0.0
    assert bool((grads[torch.from_numpy(next_role == Role.ASSISTANT)] > 0).all())
    # Open-o3's option: every token trains, observations included.
    grads_all = _final_hidden_grads(learner, trajs, "all")
    assert bool((grads_all[torch.from_numpy(observation)] > 0).all())


def test_micro_batching_and_checkpointing_do_not_change_the_step(tiny_model_dir, tokenizer, trajs):
    """Two micro-batches of one row each, or one of two rows: same loss, same updated weights."""
    """...and gradient checkpointing recomputes the same gradient."""
    results = []
    for budget, ckpt in ((10_000, False), (1, False), (1, True)):
        learner = _learner(tiny_model_dir, tokenizer, micro_batch_tokens=budget, grad_ckpt=ckpt)
        metrics = learner.train_step(trajs)  # one rank: the global batch is this call's
        results.append((metrics, learner.model.model.language_model.layers[0].mlp.up_proj.weight.detach().clone()))
    (one, w_one), (two, w_two), (three, w_three) = results
    assert one["trained_tokens"] == sum(int(t.loss_mask().sum()) for t in trajs) == two["trained_tokens"]
    assert one["padded_tokens"] > one["tokens"] == two["padded_tokens"]  # one padded batch vs two rows
    assert one["loss"] == pytest.approx(two["loss"], rel=1e-5) == three["loss"]
    assert torch.allclose(w_one, w_two, atol=1e-6) and torch.allclose(w_two, w_three, atol=1e-6)


def test_save_load_gives_identical_logprobs(tiny_model_dir, tokenizer, trajs, tmp_path):
    from vo3rl.train.learner import Learner

    trained = _learner(tiny_model_dir, tokenizer)
    trained.train_step(trajs, global_tokens=sum(int(t.loss_mask().sum()) for t in trajs))
    before, _ = trained.logprobs(trajs)
    path = write_checkpoint(trained, tmp_path / "step_1", {})
    assert (hf_dir(path) / "model.safetensors").is_file() and (hf_dir(path) / "tokenizer.json").is_file()
    fresh = _learner(tiny_model_dir, tokenizer)
    untrained, _ = fresh.logprobs(trajs)
    assert not np.allclose(untrained[0], before[0], equal_nan=True)
    extra = fresh.load_checkpoint(path)
    assert extra["step"] == 1 and fresh.step == 1
    after, _ = fresh.logprobs(trajs)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    # Its hf/ is an ordinary HF checkpoint too.
    direct = Learner(hf_dir(path), LearnerConfig(), tokenizer=tokenizer)
    for a, b in zip(before, direct.logprobs(trajs)[0]):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_bad_checkpoints_are_refused_clearly(tiny_model_dir, tokenizer, trajs, tmp_path):
    from vo3rl.model.tiny import TinyModelConfig, build_tiny_model
    from vo3rl.train.checkpoint import MARKER, CheckpointError

    learner = _learner(tiny_model_dir, tokenizer)
    path = write_checkpoint(learner, tmp_path / "ok", {}, with_optimizer=False)
    (path / MARKER).unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        learner.load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        learner.load_checkpoint(tmp_path / "nowhere")
    other = tmp_path / "wider"
    build_tiny_model(hf_dir(other), TinyModelConfig(text_hidden=128, mrope_section=[8, 12, 12]))
    (other / MARKER).write_text(json.dumps({"step": 0}))
    with pytest.raises(CheckpointError, match="another model.*hidden_size"):
        learner.load_checkpoint(other, with_optimizer=False)


def test_vision_tower_gets_its_own_learning_rate(tiny_model_dir, tokenizer, trajs):
    learner = _learner(tiny_model_dir, tokenizer, freeze_vision=False, vision_lr_scale=0.1)
    groups = {g["lr_scale"]: g for g in learner.optimizer.param_groups}
    vision = {id(p) for p in learner.model.model.visual.parameters()}
    assert {id(p) for p in groups[0.1]["params"]} == vision
    assert groups[1.0]["lr"] == pytest.approx(1e-3) and groups[0.1]["lr"] == pytest.approx(1e-4)
    before = [p.detach().clone() for p in groups[0.1]["params"]]
    learner.train_step(trajs, global_tokens=sum(int((t.roles == 1).sum()) for t in trajs))
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, groups[0.1]["params"]))  # the tower trains
    learner.reset_schedule(5, lr=2e-3, warmup_ratio=0.0)
    assert groups[1.0]["lr"] == pytest.approx(2e-3) and groups[0.1]["lr"] == pytest.approx(2e-4)
    frozen = _learner(tiny_model_dir, tokenizer)
    assert [g["lr_scale"] for g in frozen.optimizer.param_groups] == [1.0]


def test_on_policy_update_equals_the_recomputed_behaviour_update(tiny_model_dir, tokenizer, trajs):
    """`old_logprobs: on_policy` (the update's own detached log-probs) trains exactly like a separate
    learner recomputation of the behaviour log-probs before the update."""
    from vo3rl.rl.losses import LossConfig
    from vo3rl.rl.policy_loss import PolicyLossInputs, policy_metrics, register_rl_losses

    register_rl_losses()  # an in-process learner for RL: the "policy" loss is added explicitly
    weights, metrics = [], []
    for on_policy in (False, True):
        learner = _learner(tiny_model_dir, tokenizer, lr=1e-2)
        old = None
        if not on_policy:
            old, _ = learner.logprobs(trajs, with_entropy=False, loss_on="assistant")
        inputs = PolicyLossInputs.build(trajs, LossConfig(), [1.0, -0.5], old, None, on_policy=on_policy,
                                        with_entropy=on_policy)
        update = learner.train_step(trajs, loss="policy", loss_on="assistant", inputs=inputs)
        weights.append(learner.model.model.language_model.layers[0].mlp.up_proj.weight.detach().clone())
        metrics.append(policy_metrics(update))
    assert metrics[1]["train/ratio_mean"] == pytest.approx(1.0) and metrics[1]["train/clip_frac"] == 0.0
    assert metrics[0]["train/pg_loss"] == pytest.approx(metrics[1]["train/pg_loss"], abs=1e-6)
    assert 0.0 < metrics[1]["train/entropy"] < np.log(len(tokenizer)) and "train/entropy" not in metrics[0]
    assert not torch.equal(weights[0], _learner(tiny_model_dir, tokenizer).model.model.language_model.layers[0].mlp.up_proj.weight)
    assert torch.allclose(weights[0], weights[1], atol=1e-6)
