"""A checkpoint resumes on another number of ranks: sharded optimizer state saved by 2 FSDP2 ranks
(gloo) loads into 1, and 1 into 2; the resumed step is the uninterrupted run's step."""
import numpy as np
import pytest
from learner_fixtures import local_ray_fixture, trajectory, write_colour_mp4

from vo3rl.config.learner import LearnerConfig
from vo3rl.train.checkpoint import write_checkpoint

pytestmark = pytest.mark.slow


ray_local = local_ray_fixture("/tmp/vo3rl-ck")


def _train(model_dir, ranks, trajs, steps, save_dtype="auto", save_after=None, save_to=None, resume=None):
    """`steps` SFT steps on `ranks` ranks (after loading `resume`; writing `save_to` after step
    `save_after`); returns each step's loss and the final weights."""
    from vo3rl.workers.learner import LearnerGroup

    cfg = LearnerConfig(ranks=ranks, lr=1e-3, warmup_ratio=0.0, micro_batch_tokens=1200, save_dtype=save_dtype)
    group = LearnerGroup(str(model_dir), cfg, total_steps=6)
    try:
        if resume is not None:
            assert group.load_checkpoint(str(resume))["step"] == save_after
        losses = []
        for step in range(steps):
            losses.append(group.train_step(trajs)["loss"])
            if save_to is not None and step + 1 == save_after:
                write_checkpoint(group, save_to, {"step": step + 1})
        return losses, group.export_weights()
    finally:
        group.shutdown()


@pytest.mark.parametrize("saved_by, resumed_by, save_dtype", [(2, 1, "bf16"), (1, 2, "auto")])
def test_resume_on_another_number_of_ranks_takes_the_uninterrupted_step(
        ray_local, tiny_model_dir, tokenizer, tmp_path, saved_by, resumed_by, save_dtype):
    # bf16: the fp32 masters come from the DCP state, resharded; auto (fp32 here): from hf/, and only
    # the optimizer is resharded.
    videos = [write_colour_mp4(str(tmp_path / f"v{i}.mp4"), seed=i) for i in range(2)]
    trajs = [trajectory(tokenizer, videos[0]), trajectory(tokenizer, videos[1], sample_id="b", answer_text="B")]
    path = tmp_path / "step_2"
    losses, uninterrupted = _train(tiny_model_dir, saved_by, trajs, 3, save_dtype, save_after=2, save_to=path)
    (resumed_loss,), resumed = _train(tiny_model_dir, resumed_by, trajs, 1, save_dtype, save_after=2, resume=path)
    assert resumed_loss == pytest.approx(losses[2], rel=1e-5) and losses[2] < losses[0]
    # Adam's third step moves an entry by up to lr = 1e-3 and depends on the restored moments and step
    # count; the ranks' different reduction order leaves a few 1e-6.
    assert set(resumed) == set(uninterrupted)
    for key, value in uninterrupted.items():
        np.testing.assert_allclose(resumed[key].numpy(), value.numpy(), atol=5e-5, err_msg=key)
