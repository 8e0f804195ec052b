"""Activation checkpointing recomputes the text decoder layers without changing the loss or any
gradient; bf16 on one unsharded rank computes the decoder in bf16 while the master weights, the
log-softmax and the loss stay fp32 (CPU autocast here; the same `torch.autocast` path on CUDA)."""
import numpy as np
import pytest
import torch
from learner_fixtures import trajectory, write_colour_mp4

from vo3rl.config.learner import LearnerConfig


@pytest.fixture(scope="module")
def trajs(tokenizer, tmp_path_factory):
    video = write_colour_mp4(str(tmp_path_factory.mktemp("precision") / "a.mp4"))
    return [trajectory(tokenizer, video), trajectory(tokenizer, video, sample_id="s2", answer_text="B")]


def _learner(model_dir, tokenizer, **overrides):
    from vo3rl.train.learner import Learner

    cfg = LearnerConfig(**{"lr": 1e-3, "warmup_ratio": 0.0, "micro_batch_tokens": 100_000} | overrides)
    return Learner(model_dir, cfg, total_steps=4, tokenizer=tokenizer)


def _loss_and_grads(learner, trajs, use_tdam):
    """SFT loss of one micro-batch and every parameter's gradient; counts decoder-layer forwards."""
    from vo3rl.train.forward import score_targets
    from vo3rl.train.losses import sft_loss

    calls = []
    layers = learner.model.model.language_model.layers

    def counted(forward):
        def run(*args, **kwargs):
            calls.append(1)
            return forward(*args, **kwargs)
        return run

    for layer in layers:  # wraps `forward` itself: module hooks do not fire in the recompute
        layer.forward = counted(layer.forward)
    learner.model.train()
    try:
        (_, chosen, batch), = learner._batches(trajs, "assistant", use_tdam)
        loss = sft_loss(score_targets(learner.model, batch), batch, chosen, None)
        loss.backward()
    finally:
        for layer in layers:
            del layer.forward
    grads = {name: p.grad.clone() for name, p in learner.model.named_parameters() if p.grad is not None}
    learner.optimizer.zero_grad(set_to_none=True)
    return float(loss.detach()), grads, len(calls)


def test_gradient_checkpointing_recomputes_and_keeps_every_gradient(tiny_model_dir, tokenizer, trajs):
    plain = _learner(tiny_model_dir, tokenizer)
    checkpointed = _learner(tiny_model_dir, tokenizer, grad_ckpt=True)
    n_layers = len(plain.model.model.language_model.layers)
    for use_tdam in (False, True):
        loss, grads, calls = _loss_and_grads(plain, trajs, use_tdam)
        loss_ckpt, grads_ckpt, calls_ckpt = _loss_and_grads(checkpointed, trajs, use_tdam)
        assert calls == n_layers and calls_ckpt == 2 * n_layers  # each layer ran again in backward
        assert loss_ckpt == pytest.approx(loss, rel=1e-6)
        assert set(grads) == set(grads_ckpt) and any("layers.0." in name for name in grads)
        for name, grad in grads.items():
            torch.testing.assert_close(grads_ckpt[name], grad, atol=1e-7, rtol=1e-5, msg=name)


def test_bf16_computes_in_bf16_and_keeps_fp32_masters_and_reductions(tiny_model_dir, tokenizer, trajs):
    from vo3rl.train.forward import score_targets

    trajs = trajs[:1]  # CPU bf16 matmuls are slow; one trajectory shows it

    fp32 = _learner(tiny_model_dir, tokenizer, dtype="fp32")
    bf16 = _learner(tiny_model_dir, tokenizer, dtype="bf16")
    assert bf16.bf16 and not fp32.bf16
    layer_dtypes = []
    hook = bf16.model.model.language_model.layers[0].mlp.down_proj.register_forward_hook(
        lambda module, inputs, out: layer_dtypes.append(out.dtype))
    (_, _, batch), = bf16._batches(trajs, "assistant", False)
    with torch.no_grad(), bf16._autocast():
        scores = score_targets(bf16.model, batch, with_entropy=True)
    hook.remove()
    assert layer_dtypes == [torch.bfloat16]  # the decoder's matmuls ran in bf16 ...
    assert scores.logprobs.dtype == scores.entropy.dtype == torch.float32  # ... the head's softmax in fp32
    low, _ = bf16.logprobs(trajs, with_entropy=False, loss_on="assistant")
    high, _ = fp32.logprobs(trajs, with_entropy=False, loss_on="assistant")
    for a, b in zip(low, high):
        gap = np.nanmax(np.abs(a - b))
        assert 0 < gap < 0.1  # bf16 rounding, visible but small at this size
    metrics_low, metrics_high = bf16.train_step(trajs), fp32.train_step(trajs)
    assert metrics_low["loss"] == pytest.approx(metrics_high["loss"], rel=2e-2)
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())  # master weights
    assert all(v.dtype == torch.float32 for state in bf16.optimizer.state.values() for v in state.values()
               if torch.is_tensor(v) and v.is_floating_point())
