"""Megatron with tensor parallelism 2 (two gloo ranks as Ray actors, one replica) takes the same step
as the one-rank FSDP2 learner: loss, gradient norm, log-probs, updated weights. Tolerances as in
tests/test_megatron_learner.py (fp32; the split matmuls add only summation-order rounding)."""
import numpy as np
import pytest
from learner_fixtures import local_ray_fixture, trajectory, write_colour_mp4

from vo3rl.config.learner import LearnerConfig, MegatronConfig

pytestmark = pytest.mark.slow

ray_local = local_ray_fixture("/tmp/vo3rl-mtp")


def test_tensor_parallel_two_ranks_match_fsdp2(ray_local, tokenizer, tmp_path):
    from vo3rl.config.model import TinyModelConfig
    from vo3rl.model.tiny import build_tiny_model
    from vo3rl.train.learner import Learner
    from vo3rl.workers.learner import LearnerGroup

    model_dir = build_tiny_model(tmp_path / "model", TinyModelConfig(text_heads=2, text_kv_heads=2))
    videos = [write_colour_mp4(str(tmp_path / f"v{i}.mp4"), seed=i) for i in range(2)]
    trajs = [trajectory(tokenizer, videos[0]), trajectory(tokenizer, videos[1], sample_id="b", answer_text="B")]
    base = dict(lr=1e-3, warmup_ratio=0.0, micro_batch_tokens=1200, freeze_vision=False)
    group = LearnerGroup(str(model_dir), LearnerConfig(backend="megatron", ranks=2, dist_backend="gloo",
                                                       megatron=MegatronConfig(tensor_parallel=2), **base), total_steps=4)
    try:
        tp_lp, _ = group.logprobs(trajs)
        tp = group.train_step(trajs)
        tp_weights = group.export_weights()
    finally:
        group.shutdown()
    fsdp = Learner(model_dir, LearnerConfig(**base), total_steps=4, tokenizer=tokenizer)
    lp, _ = fsdp.logprobs(trajs)
    one = fsdp.train_step(trajs)
    weights = fsdp.export_weights()
    for a, b in zip(lp, tp_lp):
        np.testing.assert_allclose(a, b, atol=2e-5, equal_nan=True)
    # The two ranks of the one replica saw the same share: the tokens are counted once, not twice.
    assert (tp["tokens"], tp["trained_tokens"]) == (one["tokens"], one["trained_tokens"])
    assert tp["loss"] == pytest.approx(one["loss"], rel=1e-6)
    assert tp["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-5)
    assert set(tp_weights) == set(weights)  # HF names, the vocabulary padding cut off
    for key, value in weights.items():
        np.testing.assert_allclose(tp_weights[key].numpy(), value.numpy(), atol=5e-5, err_msg=key)
