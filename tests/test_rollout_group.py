"""The rollout group's fan-out and fault handling, with light stand-in actors (no vLLM): work units dealt
to whichever worker is free, group indices, skipped samples counted, a dead worker restarted with the
newest weights and its unit redone, round-robin routing giving the sticky trajectories, one worker
getting the whole call, workers the cluster cannot place refused in one line."""
import os
import shutil
import tempfile
import time

import numpy as np
import pytest
import ray

from vo3rl.agent.trajectory import Trajectory
from vo3rl.config.rollout import RolloutConfig
from vo3rl.data.schema import Sample
from vo3rl.rollout.service import RolloutBatch, request_seed
from vo3rl.rollout.tts import TTSBatch, TTSResult
from vo3rl.video.types import VideoRef
from vo3rl.workers.rollout import RolloutGroup, rollout_config

pytestmark = pytest.mark.slow


@ray.remote
class StandInWorker:
    """RolloutWorker's interface. Each trajectory's tokens are the weight version it was made with and
    its first turn's sampling seed; a sample named "bad" is skipped; "fatal" kills the worker's process,
    "fatal_once" only the first time. With `presets["marker_dir"]`, the first worker to start is slow."""

    def __init__(self, model_path, cfg, presets, templates, cache_mb, log_level, grammar=None, weight_version=0,
                 concurrent_updates=False):
        self.version, self.seed, self.calls = weight_version, cfg["seed"], 0
        self.marker_dir = presets.get("marker_dir")
        self.slow = self.marker_dir is not None and self._first("slow")
        self.flaky_restart = presets.get("flaky_restart", False)

    def _first(self, marker: str) -> bool:
        """True for the first process to ask about `marker` (it creates the file). A method, not a module
        function: the actor's workers cannot import this test module."""
        try:
            os.close(os.open(os.path.join(self.marker_dir, marker), os.O_CREAT | os.O_EXCL))
            return True
        except FileExistsError:
            return False

    def ready(self):
        # "flaky_restart": the first restarted worker dies while starting (as on a node being lost)
        if self.flaky_restart and not self._first("started") and self._first("died_starting"):
            os._exit(1)
        return {"pid": os.getpid()}

    def update_weights(self, state_dict, version=None):
        self.version = state_dict["version"]
        return self.version

    def generate(self, samples, n_per_sample, mode="train", group_offset=0, members=None, call=None):
        batch = RolloutBatch(stats={"pid": os.getpid(), "slow": self.slow, "samples": len(samples),
                                    "spread": members is not None or call is not None})
        if call is None:
            call, self.calls = self.calls, self.calls + 1
        time.sleep(1.0 if self.slow else 0.0)
        for index, sample in enumerate(samples):
            wanted = range(n_per_sample) if members is None else members[index]
            if not wanted:
                continue
            if sample.id == "fatal" or (sample.id == "fatal_once" and self._first("died")):
                os._exit(1)
            if sample.id == "bad":
                batch.skipped[sample.id] = "missing"
                continue
            for member in wanted:
                seed = request_seed(self.seed, call, sample.id, group_offset + index, member, 0)
                batch.trajectories.append(Trajectory(sample.id, np.array([self.version, seed]),
                                                     np.array([1, 1], np.uint8), group_index=group_offset + index))
                batch.members.append(member)
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


def make_group(n_workers=2, presets=None, **cfg):
    return RolloutGroup("/model", cfg=RolloutConfig(worker_cpus=0.5, **cfg), n_workers=n_workers,
                        presets=presets or {}, templates={}, worker_class=StandInWorker, max_restarts=1)


def test_one_worker_gets_the_whole_call_as_before_units_existed(ray_local):
    group = make_group(n_workers=1)
    out = group.generate(samples("a", "b", "c", "d", "e"), 2)
    assert [(t.sample_id, t.group_index) for t in out] == [(s, g) for g, s in enumerate("abcde") for _ in range(2)]
    # one call, the whole list, no members or call number: the seeded CPU figures cannot change
    assert [(s["samples"], s["spread"]) for s in group.last_stats] == [(5, False)]
    group.shutdown()


def test_units_go_to_whichever_worker_is_free_and_come_back_in_order(ray_local, tmp_path):
    group = make_group(presets={"marker_dir": str(tmp_path)}, units_per_worker=4, min_unit_trajectories=1)
    ids = [f"s{i}" for i in range(16)]
    out = group.generate(samples(*ids), 3)
    assert [(t.sample_id, t.group_index) for t in out] == [(s, g) for g, s in enumerate(ids) for _ in range(3)]
    assert len(group.last_stats) == 8 and all(s["samples"] == 2 for s in group.last_stats)  # 2 workers x 4 units
    units = {slow: sum(s["slow"] == slow for s in group.last_stats) for slow in (True, False)}
    assert 1 <= units[True] < units[False]  # the slow worker (1 s a unit) took fewer
    group.shutdown()


def test_round_robin_gives_the_sticky_trajectories(ray_local):
    outputs = {}
    for routing in ("sticky", "round_robin"):
        group = make_group(routing=routing, min_unit_trajectories=1)
        group.generate(samples("warm"), 1)  # call numbers advance alike under either routing
        out = group.generate(samples("a", "bad", "c", "d", "e"), 3)
        outputs[routing] = [(t.sample_id, t.group_index, tuple(t.token_ids.tolist())) for t in out]
        assert group.skipped == {"missing": 1}  # once, though both engines were sent the sample
        group.shutdown()
    assert outputs["sticky"] == outputs["round_robin"]
    assert len({token_ids for _, _, token_ids in outputs["sticky"]}) == 12  # every member its own seed


def test_a_worker_dying_mid_unit_is_restarted_and_its_unit_redone(ray_local, tmp_path):
    (tmp_path / "slow").touch()  # no slow worker here
    group = make_group(presets={"marker_dir": str(tmp_path)}, units_per_worker=2, min_unit_trajectories=1)
    group.update_weights({"version": 5})
    out = group.generate(samples("a", "b", "fatal_once", "d", "e", "f"), 2)
    assert group.restarts == 1
    assert [t.sample_id for t in out] == [s for s in ("a", "b", "fatal_once", "d", "e", "f") for _ in range(2)]
    assert [t.group_index for t in out] == [g for g in range(6) for _ in range(2)]
    assert all(int(t.token_ids[0]) == 5 for t in out)  # the redone unit ran on the newest weights
    group.shutdown()


def test_a_restarted_worker_that_dies_while_starting_is_started_again(ray_local, tmp_path):
    group = make_group(n_workers=1, presets={"marker_dir": str(tmp_path), "flaky_restart": True})
    out = group.generate(samples("a", "fatal_once"), 2)
    assert [t.sample_id for t in out] == ["a", "a", "fatal_once", "fatal_once"]
    assert group.restarts == 1 and (tmp_path / "died_starting").exists()
    group.shutdown()


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
