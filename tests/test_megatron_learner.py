"""The Megatron learner (one rank, in process) against the FSDP2 learner on the same tiny model and
batch: log-probs, entropies, the TDAM mask's effect, an SFT step and an RL policy step (loss, gradient
norm, updated weights); its checkpoint (HF export read by transformers, optimizer state resumed).

Tolerances, fp32 throughout: log-probs 2e-5 nats and losses 1e-6 relative (the two decoders run the same
maths in another order: megatron's fused q/k/v and gate/up matmuls, its own softmax, RoPE and RMSNorm;
measured differences ~2e-6); updated weights 5e-5 absolute after one Adam step of lr 1e-3 (Adam's first
step moves every entry by ~lr whatever the gradient's size, so an entry whose gradient is rounding noise
in both runs may land a few 1e-6 apart; measured worst 8e-6)."""
import numpy as np
import pytest
from learner_fixtures import trajectory, write_colour_mp4

from vo3rl.config.learner import LearnerConfig


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tokenizer):
    from vo3rl.config.model import TinyModelConfig
    from vo3rl.model.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("megatron")
    model_dir = build_tiny_model(root / "model", TinyModelConfig(text_heads=2, text_kv_heads=2))
    videos = [write_colour_mp4(str(root / f"v{i}.mp4"), seed=i) for i in range(2)]
    trajs = [trajectory(tokenizer, videos[0]), trajectory(tokenizer, videos[1], sample_id="b", answer_text="B"),
             trajectory(tokenizer, videos[0], sample_id="c", answer_text="A, the red one")]
    return root, model_dir, trajs


def _config(**changes) -> LearnerConfig:
    return LearnerConfig(lr=1e-3, warmup_ratio=0.0, micro_batch_tokens=1200, freeze_vision=False, **changes)


def _steps(learner, trajs):
    """Log-probs with and without TDAM, an SFT step, then a policy step on the new weights."""
    from vo3rl.rl.losses import LossConfig
    from vo3rl.rl.policy_loss import PolicyLossInputs, policy_metrics, register_rl_losses

    register_rl_losses()
    lp, ent = learner.logprobs(trajs)
    lp_tdam, _ = learner.logprobs(trajs, use_tdam=True)
    sft = learner.train_step(trajs)
    after, _ = learner.logprobs(trajs)
    inputs = PolicyLossInputs.build(trajs, LossConfig(), [1.0, -1.0, 0.5], after, None, on_policy=False,
                                    with_entropy=True)
    policy = learner.train_step(trajs, loss="policy", inputs=inputs)
    # In process the export may share storage with the live parameters: copy it before training on.
    weights = {k: v.clone() for k, v in learner.export_weights().items()}
    return dict(lp=lp, ent=ent, lp_tdam=lp_tdam, sft=sft, policy=policy, pm=policy_metrics(policy), weights=weights)


def _close(a, b, atol):
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=atol, equal_nan=True)


def test_megatron_matches_fsdp2_and_its_checkpoint_loads_in_transformers(setup, tokenizer):
    from safetensors.torch import load_file

    from vo3rl.train.checkpoint import hf_dir, write_checkpoint
    from vo3rl.train.learner import Learner
    from vo3rl.train.megatron.learner import MegatronLearner

    root, model_dir, trajs = setup
    fsdp = _steps(Learner(model_dir, _config(), total_steps=4, tokenizer=tokenizer), trajs)
    megatron = MegatronLearner(model_dir, _config(backend="megatron"), total_steps=4, tokenizer=tokenizer)
    try:
        mg = _steps(megatron, trajs)
        write_checkpoint(megatron, root / "ckpt" / "step_2", {"step": 2})
        saved_lp, _ = megatron.logprobs(trajs)
        next_step = megatron.train_step(trajs)
        next_weights = {k: v.clone() for k, v in megatron.export_weights().items()}
    finally:
        megatron.shutdown()

    _close(fsdp["lp"], mg["lp"], 2e-5)
    _close(fsdp["ent"], mg["ent"], 2e-5)
    # TDAM changes Megatron's log-probs as it changes FSDP2's (and it does change them).
    effect = [t - p for t, p in zip(fsdp["lp_tdam"], fsdp["lp"])]
    assert max(np.nanmax(np.abs(e)) for e in effect) > 1e-3
    _close(effect, [t - p for t, p in zip(mg["lp_tdam"], mg["lp"])], 2e-5)
    for key in ("loss", "trained_tokens", "tokens", "padded_tokens"):
        assert mg["sft"][key] == pytest.approx(fsdp["sft"][key], rel=1e-6), key
    assert mg["sft"]["grad_norm"] == pytest.approx(fsdp["sft"]["grad_norm"], rel=1e-5)
    assert mg["policy"]["loss"] == pytest.approx(fsdp["policy"]["loss"], rel=1e-5, abs=1e-7)
    for key in ("train/pg_loss", "train/entropy", "train/ratio_mean"):
        assert mg["pm"][key] == pytest.approx(fsdp["pm"][key], rel=1e-5, abs=1e-7), key
    start = load_file(str(model_dir / "model.safetensors"))
    assert set(mg["weights"]) == set(fsdp["weights"])
    moved = np.abs(mg["weights"]["model.language_model.layers.0.mlp.up_proj.weight"].numpy()
                   - start["model.layers.0.mlp.up_proj.weight"].numpy()).mean()
    assert 5e-4 < moved < 4e-3  # two Adam steps of lr 1e-3
    for key, value in fsdp["weights"].items():
        np.testing.assert_allclose(mg["weights"][key].numpy(), value.numpy(), atol=5e-5, err_msg=key)

    # The export is an HF model: transformers (through the FSDP2 learner) scores it as Megatron did.
    exported = Learner(hf_dir(root / "ckpt" / "step_2"), _config(), tokenizer=tokenizer)
    _close(exported.logprobs(trajs)[0], saved_lp, 2e-5)
    del exported

    # Resumed from the checkpoint (weights, Adam's moments, schedule), the next step is the same step.
    resumed = MegatronLearner(model_dir, _config(backend="megatron"), total_steps=4, tokenizer=tokenizer)
    try:
        assert resumed.load_checkpoint(root / "ckpt" / "step_2")["step"] == 2 and resumed.step == 2
        again = resumed.train_step(trajs)
        again_weights = resumed.export_weights()
    finally:
        resumed.shutdown()
    assert again["loss"] == pytest.approx(next_step["loss"], rel=1e-6) and again["lr"] == next_step["lr"]
    for key, value in next_weights.items():
        np.testing.assert_allclose(again_weights[key].numpy(), value.numpy(), atol=1e-6, err_msg=key)


def test_tensor_parallel_degrees_the_model_cannot_split_are_refused_before_a_rank_starts(setup):
    from vo3rl.config.learner import MegatronConfig
    from vo3rl.workers.learner import make_learner

    _, model_dir, _ = setup
    cfg = _config(backend="megatron", ranks=4, megatron=MegatronConfig(tensor_parallel=4))
    with pytest.raises(ValueError, match=r"^learner.megatron.tensor_parallel = 4: must divide the model's "
                                         r"num_attention_heads = 2 \(each tensor-parallel rank holds whole attention heads\)$"):
        make_learner(model_dir, cfg)
