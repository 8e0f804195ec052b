"""Learner workers under Ray: 1 rank and 2 FSDP2 ranks (gloo) take the same step."""
import numpy as np
import pytest
from learner_fixtures import local_ray_fixture, trajectory, write_colour_mp4

from vo3rl.config.learner import LearnerConfig

pytestmark = pytest.mark.slow


ray_local = local_ray_fixture("/tmp/vo3rl-t5")


def _step(model_dir, ranks, trajs):
    """An SFT step, then a policy-loss step whose per-trajectory inputs each rank gets its share of."""
    from vo3rl.rl.losses import LossConfig
    from vo3rl.rl.policy_loss import PolicyLossInputs, policy_metrics
    from vo3rl.workers.learner import LearnerGroup

    cfg = LearnerConfig(ranks=ranks, lr=1e-3, warmup_ratio=0.0, micro_batch_tokens=1200, freeze_vision=False)
    group = LearnerGroup(str(model_dir), cfg, total_steps=4)
    try:
        metrics = group.train_step(trajs)
        weights = group.export_weights()
        logprobs, _ = group.logprobs(trajs)
        inputs = PolicyLossInputs.build(trajs, LossConfig(), [1.0, -1.0, 0.5, -0.25][: len(trajs)], logprobs, None,
                                        on_policy=False, with_entropy=True)
        policy = policy_metrics(group.train_step(trajs, loss="policy", inputs=inputs))
    finally:
        group.shutdown()
    return metrics, weights, logprobs, policy


def test_one_and_two_ranks_give_the_same_loss_and_weights(ray_local, tiny_model_dir, tokenizer, tmp_path):
    videos = [write_colour_mp4(str(tmp_path / f"v{i}.mp4"), seed=i) for i in range(2)]
    trajs = [trajectory(tokenizer, videos[0]), trajectory(tokenizer, videos[1], sample_id="b", answer_text="B"),
             trajectory(tokenizer, videos[0], sample_id="c", answer_text="A, the red one"),
             trajectory(tokenizer, videos[1], sample_id="d", answer_text="B. blue")]
    one, w_one, lp_one, policy_one = _step(tiny_model_dir, 1, trajs)
    two, w_two, lp_two, policy_two = _step(tiny_model_dir, 2, trajs)
    assert one["trained_tokens"] == two["trained_tokens"] > 0
    assert one["loss"] == pytest.approx(two["loss"], rel=1e-5)
    assert set(w_one) == set(w_two)
    # The step moved the weights (the vision tower too: it is trainable here) by about lr = 1e-3 per
    # entry (Adam's first step); the two runs agree to within 5% of that. Adam divides by sqrt(v) + eps,
    # so a gradient entry that is pure rounding noise in both runs can still move a few 1e-6 apart.
    from safetensors.torch import load_file

    start = load_file(str(tiny_model_dir / "model.safetensors"))
    for saved, live in (("model.layers.0.mlp.up_proj.weight", "model.language_model.layers.0.mlp.up_proj.weight"),
                        ("visual.blocks.0.mlp.up_proj.weight", "model.visual.blocks.0.mlp.up_proj.weight")):
        moved = np.abs(w_one[live].numpy() - start[saved].numpy()).mean()
        assert 5e-4 < moved < 2e-3
    for key, value in w_one.items():
        np.testing.assert_allclose(value.numpy(), w_two[key].numpy(), atol=5e-5, err_msg=key)
    for a, b in zip(lp_one, lp_two):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # The behaviour log-probs are the policy's own: ratio 1; each rank lined up its share's advantages.
    for policy in (policy_one, policy_two):
        assert policy["train/ratio_mean"] == pytest.approx(1.0, abs=1e-4) and policy["train/clip_frac"] == 0.0
    assert policy_one["train/pg_loss"] == pytest.approx(policy_two["train/pg_loss"], rel=1e-4, abs=1e-6)
    assert policy_one["train/entropy"] == pytest.approx(policy_two["train/entropy"], rel=1e-4)


def test_ranks_the_cluster_cannot_place_stop_with_one_line_and_free_the_cluster(ray_local, tiny_model_dir):
    import ray

    from vo3rl.workers.learner import LearnerGroup

    cfg = LearnerConfig(ranks=2)
    from vo3rl.workers.placement import Unplaceable

    with pytest.raises(Unplaceable) as caught:  # 2 ranks x 2 CPUs on a 2-CPU cluster
        LearnerGroup(str(tiny_model_dir), cfg, cpus_per_rank=2, placement_timeout_s=1.0)
    message = str(caught.value)
    assert message.startswith("learner: 2 x {'CPU': 2} (4 CPU in all) were not placed in 1 s")
    assert "the cluster has 2 CPU in all" in message and "ray.placement_timeout_s" in message
    ray.get(ray.remote(num_cpus=2)(lambda: 1).remote(), timeout=60)  # its reservation was given back
