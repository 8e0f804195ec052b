"""The colocated layout without a cluster: its recipe rules at load time, the local GPU count it needs,
the shared bundles it reserves and hands to the learner, and the RL step's order with plain fakes
(rollout -> reward -> sleep -> update -> wake -> weight sync; never in the separate layout). Milliseconds."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from test_rl_step import FakeLearner, FakeRewards, FakeRollout, sample

from vo3rl.config import RecipeError, load_recipe
from vo3rl.config.rl import RLConfig
from vo3rl.orchestration.checks import placement_problems
from vo3rl.rl.step import PromptSet, StepServices, rl_step

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "recipes/video_o3/rl.yaml"  # 16 learner ranks and 16 engines, one GPU each
TINY = ROOT / "recipes/tiny_cpu/rl.yaml"  # one rank, one engine, no GPU


def _load(path, *overrides):
    return load_recipe(path, ["rl.init_from=/nowhere/sft", *overrides])


def test_the_layout_is_separate_unless_a_recipe_says_colocated():
    recipe = _load(TINY)
    assert recipe.placement.layout == "separate" and not recipe.placement.colocated
    assert recipe.placement.sleep_level == 2
    assert _load(PAPER, "placement.layout=colocated").placement.colocated
    assert _load(TINY, "placement.layout=colocated", "placement.sleep_level=1").placement.sleep_level == 1


@pytest.mark.parametrize("overrides, message", [
    (["placement.layout=side_by_side"], "placement.layout = 'side_by_side': must be one of separate, colocated"),
    (["placement.sleep_level=0"], "placement.sleep_level = 0: must be 1 (weights to host memory, KV cache dropped) "
                                  "or 2 (both dropped)"),
    (["rl.mode=one_step_off"], "placement.layout = 'colocated': rl.mode = 'one_step_off': must be sync"),
    (["rl.mode=async"], "placement.layout = 'colocated': rl.mode = 'async': must be sync"),
    (["rl.rollout_workers=8"], "placement.layout = 'colocated': rl.rollout_workers x rollout.worker_gpus = 8 x 1 = "
                               "8 GPUs: must equal learner.ranks x rl.learner_gpus = 16 x 1 = 16"),
    (["rl.rollout_workers=8", "rollout.worker_gpus=2", "rollout.tensor_parallel_size=2"],
     "placement.layout = 'colocated': rl.rollout_workers = 8: must equal learner.ranks = 16"),
    (["rl.learner_gpus=2", "rollout.worker_gpus=2"], "placement.layout = 'colocated': rl.learner_gpus = 2: must be 0 or 1"),
    (["rollout.tensor_parallel_size=2"], "placement.layout = 'colocated': rollout.tensor_parallel_size = 2: must be 1"),
])
def test_a_layout_that_cannot_colocate_is_one_line_at_load_time(overrides, message):
    layout = [] if overrides[0].startswith("placement.") else ["placement.layout=colocated"]
    with pytest.raises(RecipeError) as err:
        _load(PAPER, *layout, *overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cpu_colocation_pairs_one_engine_with_each_rank():
    with pytest.raises(RecipeError, match=r"rl.rollout_workers = 2: must equal learner.ranks = 1"):
        _load(TINY, "placement.layout=colocated", "rl.rollout_workers=2")
    assert _load(TINY, "placement.layout=colocated", "rl.rollout_workers=2", "learner.ranks=2").placement.colocated


def test_overlapped_modes_still_run_separate():
    assert _load(PAPER, "rl.mode=async").rl.mode == "async"


def test_a_local_ray_counts_the_shared_gpus_once():
    local = ["ray.address=null", "ray.num_cpus=64"]
    separate = placement_problems(_load(PAPER, *local), local_gpus=16)
    assert separate == ["the RL actors reserve 32 GPUs (16 learner x rl.learner_gpus = 1, 16 rollout x "
                        "rollout.worker_gpus = 1): this machine has 16"]
    assert placement_problems(_load(PAPER, *local, "placement.layout=colocated"), local_gpus=16) == []
    short = placement_problems(_load(PAPER, *local, "placement.layout=colocated"), local_gpus=8)
    assert short == ["the RL actors reserve 16 GPUs (16 learner x rl.learner_gpus = 1, the rollout engines on "
                     "their GPUs (placement.layout colocated)): this machine has 8"]


# -- the shared bundles ---------------------------------------------------------------------------
@pytest.fixture
def reserved(monkeypatch):
    """Placement groups asked of a stand-in Ray: (bundles, strategy) per group, every one ready at once."""
    from vo3rl.workers import placement

    asked = []

    class Group:
        def __init__(self, bundles, strategy):
            self.bundles, self.strategy = bundles, strategy
            asked.append(self)

        def ready(self):
            return None

    monkeypatch.setattr(placement, "placement_group", lambda bundles, strategy: Group(bundles, strategy))
    monkeypatch.setattr(placement.ray, "get", lambda ref, timeout: None)
    monkeypatch.setattr(placement, "remove_placement_group", lambda group: asked.remove(group))
    return asked


def test_colocated_bundles_hold_a_rank_and_an_engine_and_sum_their_shares(reserved):
    from vo3rl.workers.placement import colocate, colocated_shares

    colocation = colocate(4, learner_cpus=2, rollout_cpus=1, gpus=1, timeout_s=1.0)
    (group,) = reserved
    assert group.bundles == [{"CPU": 3, "GPU": 1.0}] * 4 and group.strategy == "PACK"
    assert colocation.shares == {"learner": {"CPU": 2, "GPU": 0.5}, "rollout": {"CPU": 1, "GPU": 0.5}}
    assert colocated_shares(1, 1, 0) == {"learner": {"CPU": 1}, "rollout": {"CPU": 1}}  # CPU only: no GPU key
    colocation.shutdown()
    assert reserved == [] and colocation.group is None


def test_the_learner_reserving_inside_hosting_gets_the_shared_bundles(reserved):
    from vo3rl.workers.placement import colocate, place

    colocation = colocate(2, learner_cpus=1, rollout_cpus=1, gpus=1, timeout_s=1.0)
    with colocation.hosting("learner"):
        assert place("learner", 2, {"CPU": 1, "GPU": 0.5}, 1.0, "hint") is colocation.group
        with pytest.raises(ValueError, match=r"learner: 2 x \{'CPU': 1, 'GPU': 1\} do not fit"):
            place("learner", 2, {"CPU": 1, "GPU": 1}, 1.0, "hint")  # a whole GPU is more than its share
        with pytest.raises(ValueError, match="do not fit"):
            place("learner", 3, {"CPU": 1}, 1.0, "hint")  # more ranks than bundles
        elsewhere = []
        thread = threading.Thread(target=lambda: elsewhere.append(place("learner", 1, {"CPU": 1}, 1.0, "hint")))
        thread.start()
        thread.join()
        assert elsewhere[0] is not colocation.group  # another thread's run reserves its own
        assert place("rollout", 1, {"CPU": 1}, 1.0, "hint") is not colocation.group  # only the hosted role
    assert place("learner", 2, {"CPU": 1}, 1.0, "hint") is not colocation.group  # outside: a group of its own
    assert colocation.claim("rollout", 2, colocation.shares["rollout"]) is colocation.group
    assert len(reserved) == 4


# -- the RL step's order --------------------------------------------------------------------------
class Calls(list):
    """The order in which the step called its services."""


class OrderedRollout(FakeRollout):
    def __init__(self, calls: Calls, flat=frozenset(), freed_bytes: int = 3 << 30, available: bool = True):
        super().__init__(flat)
        self.order, self.freed, self.available = calls, freed_bytes, available

    def generate(self, samples, n_per_sample, mode):
        self.order.append("rollout")
        return super().generate(samples, n_per_sample, mode)

    def update_weights(self, weights, version=None):
        self.order.append("sync")
        super().update_weights(weights, version)

    def sleep(self):
        self.order.append("sleep")
        return {"seconds": 0.25, "freed_bytes": self.freed, "available": self.available, "reason": ""}

    def wake_up(self):
        self.order.append("wake")
        return {"seconds": 0.5, "freed_bytes": -self.freed, "available": self.available, "reason": ""}


class OrderedRewards(FakeRewards):
    def __init__(self, calls: Calls):
        self.order = calls

    def score(self, trajectories, samples, progress):
        self.order.append("reward")
        return super().score(trajectories, samples, progress)


class OrderedLearner(FakeLearner):
    def __init__(self, calls: Calls):
        super().__init__()
        self.order = calls

    def train_step(self, *args, **kwargs):
        self.order.append("train")
        return super().train_step(*args, **kwargs)


def _step(colocated: bool, flat=frozenset(), **rollout):
    calls = Calls()
    engines = OrderedRollout(calls, flat, **rollout)
    services = StepServices(rollout=engines, rewards=OrderedRewards(calls), learner=OrderedLearner(calls),
                            colocated=engines if colocated else None)
    prompts = PromptSet([sample(i) for i in range(4)], seed=1)
    result = rl_step(0, RLConfig(steps=2, prompts_per_step=2, group_size=4, max_refill_rounds=1), prompts, services)
    return calls, result.metrics


def test_colocated_engines_sleep_for_the_update_and_wake_before_the_sync():
    calls, metrics = _step(colocated=True)
    assert calls == ["rollout", "reward", "sleep", "train", "wake", "sync"]
    assert metrics["colocated/released_gib"] == 3.0 and metrics["colocated/reacquired_gib"] == 3.0
    assert metrics["colocated/sleep_mode"] == 1.0
    assert metrics["time/sleep_s"] >= 0 and metrics["time/wake_up_s"] >= 0


def test_separate_engines_never_sleep_and_the_step_is_otherwise_the_same():
    calls, separate = _step(colocated=False)
    assert calls == ["rollout", "reward", "train", "sync"]
    assert not any(key.startswith("colocated/") or key in ("time/sleep_s", "time/wake_up_s") for key in separate)
    _, colocated = _step(colocated=True)
    figures = sorted(key for key in separate if not key.startswith(("time/", "perf/")))
    assert len(figures) > 10  # JSON so that a NaN figure equals itself
    assert json.dumps([colocated[key] for key in figures]) == json.dumps([separate[key] for key in figures])


def test_a_step_without_an_update_keeps_the_engines_awake():
    calls, metrics = _step(colocated=True, flat={f"s{i}" for i in range(4)})
    assert calls == ["rollout", "reward", "rollout", "reward"]  # the first round and one refill, nothing kept
    assert "colocated/released_gib" not in metrics


def test_without_sleep_mode_the_step_reports_no_memory_moved():
    calls, metrics = _step(colocated=True, freed_bytes=0, available=False)
    assert calls == ["rollout", "reward", "sleep", "train", "wake", "sync"]
    assert metrics["colocated/released_gib"] == 0.0 and metrics["colocated/sleep_mode"] == 0.0
