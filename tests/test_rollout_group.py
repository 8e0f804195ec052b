"""The rollout group's fan-out and fault handling, with light stand-in actors (no vLLM): shares and group
indices, skipped samples counted, a dead worker restarted with the newest weights and its share redone,
workers the cluster cannot place refused in one line."""
import os
import shutil
import tempfile

import numpy as np
import pytest
import ray

from vo3rl.agent.trajectory import Trajectory
from vo3rl.config.rollout import RolloutConfig
from vo3rl.data.schema import Sample
from vo3rl.rollout.service import RolloutBatch
from vo3rl.rollout.tts import TTSBatch, TTSResult
from vo3rl.video.types import VideoRef
from vo3rl.workers.rollout import RolloutGroup, rollout_config

pytestmark = pytest.mark.slow


@ray.remote
class StandInWorker:
    """RolloutWorker's interface. Each trajectory's single token is the weight version it was made
    with; a sample named "bad" is skipped; a sample named "fatal" kills the worker's process."""

    def __init__(self, model_path, cfg, presets, templates, cache_mb, log_level, grammar=None, weight_version=0,
                 concurrent_updates=False):
        self.version = weight_version

    def ready(self):
        return {"pid": os.getpid()}

    def update_weights(self, state_dict, version=None):
        self.version = state_dict["version"]
        return self.version

    def generate(self, samples, n_per_sample, mode="train", group_offset=0):
        batch = RolloutBatch(stats={"pid": os.getpid()})
        for index, sample in enumerate(samples):
            if sample.id == "fatal":
                os._exit(1)
            if sample.id == "bad":
                batch.skipped[sample.id] = "missing"
                continue
            for _ in range(n_per_sample):
                batch.trajectories.append(Trajectory(sample.id, np.array([self.version]), np.array([1], np.uint8),
                                                     group_index=group_offset + index))
        return batch

    def tts(self, samples, n, vote="confidence", group_offset=0):
        batch = TTSBatch(stats={"pid": os.getpid()})
        for index, sample in enumerate(samples):
            if sample.id == "bad":
                batch.skipped[sample.id] = "missing"
                continue
            batch.results.append(TTSResult(sample.id, vote, [""] * n, ["A"] * n, [0] * n, [None] * n, [1.0] * n,
                                           f"{group_offset + index}"))
        return batch


@pytest.fixture(scope="module")
def ray_local():
    temp = tempfile.mkdtemp(prefix="vo3rl-ray-", dir="/tmp")
    ray.init(num_cpus=2, _temp_dir=temp, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def samples(*ids):
    return [Sample(id=i, question="q", answer="A", video=VideoRef("/v.mp4")) for i in ids]


def make_group(n_workers=2):
    return RolloutGroup("/model", cfg=RolloutConfig(worker_cpus=0.5), n_workers=n_workers, presets={}, templates={},
                        worker_class=StandInWorker, max_restarts=1)


def test_shares_group_indices_and_skips(ray_local):
    group = make_group()
    out = group.generate(samples("a", "bad", "c", "d", "e"), 2)
    assert [(t.sample_id, t.group_index) for t in out] == [(s, g) for s, g in (("a", 0), ("c", 2), ("d", 3), ("e", 4))
                                                          for _ in range(2)]
    assert group.skipped == {"missing": 1}
    assert len({stats["pid"] for stats in group.last_stats}) == 2  # both workers took a share
    assert len(group.ready()) == 2
    group.shutdown()


def test_tts_fans_out_like_generate(ray_local):
    group = make_group()
    out = group.tts(samples("a", "bad", "c", "d"), 3, "majority")
    assert [(r.sample_id, r.prediction, len(r.weights), r.vote) for r in out] == [
        ("a", "0", 3, "majority"), ("c", "2", 3, "majority"), ("d", "3", 3, "majority")]
    assert group.skipped == {"missing": 1} and group.last_skipped == {"bad": "missing"}
    assert len({stats["pid"] for stats in group.last_stats}) == 2
    group.shutdown()


def test_dead_worker_is_restarted_with_the_newest_weights(ray_local):
    group = make_group()
    group.update_weights({"version": 3})
    ray.kill(group.workers[1])
    out = group.generate(samples("a", "b", "c", "d"), 2)
    assert group.restarts == 1
    assert [t.sample_id for t in out] == ["a", "a", "b", "b", "c", "c", "d", "d"]
    assert all(int(t.token_ids[0]) == 3 for t in out)  # the restarted worker got version 3 before generating
    group.shutdown()


def test_restarts_are_bounded(ray_local):
    group = make_group(n_workers=1)
    with pytest.raises(ray.exceptions.RayActorError):
        group.generate(samples("a", "fatal"), 1)
    assert group.restarts == 1
    group.shutdown()


def test_rollout_section_from_a_mapping():
    cfg = rollout_config({"max_turns": 3, "temperature": 0.7})
    assert cfg.max_turns == 3 and cfg.temperature == 0.7
    assert rollout_config(None) == RolloutConfig()
    with pytest.raises(ValueError, match="not_a_key"):
        rollout_config({"max_turns": 3, "not_a_key": 1})


def test_workers_the_cluster_cannot_place_stop_with_one_line_and_free_the_cluster(ray_local):
    from vo3rl.config import RecipeError

    with pytest.raises(RecipeError) as caught:  # 3 x 1 CPU on a 2-CPU cluster: never placed
        RolloutGroup("/model", cfg=RolloutConfig(worker_cpus=1), n_workers=3, presets={}, templates={},
                     worker_class=StandInWorker, placement_timeout_s=1.0)
    message = str(caught.value)
    assert message.startswith("rollout: 3 x {'CPU': 1} (3 CPU in all) were not placed in 1 s")
    assert "rl.rollout_workers" in message and "\n" not in message
    ray.get(ray.remote(num_cpus=2)(lambda: 1).remote(), timeout=60)  # its reservation was given back
    group = make_group()  # and a group that fits is placed, one bundle per worker
    assert group.placement is not None and len(group.ready()) == 2
    group.shutdown()
    assert group.placement is None
