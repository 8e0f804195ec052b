"""Everything a recipe says is checked in one pass before any work starts, and each failure is one line
naming the key, the value and the rule; overrides go anywhere on the command line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vo3rl.cli import parse_args
from vo3rl.config import RecipeError, load_recipe

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "recipes" / "tiny_cpu" / "demo.yaml"


@pytest.mark.parametrize("overrides, fragment", [
    (["learner.lr=-1"], "learner.lr = -1.0: must be > 0"),
    (["learner.ranks=0"], "learner.ranks = 0: must be >= 1"),
    (["learner.dtype=fp16"], "learner.dtype = 'fp16': must be one of auto, bf16, fp32"),
    (["learner.tdam_ratio=2"], "learner.tdam_ratio = 2.0: must be in [0, 1]"),
    (["sft.loss_on=foo"], "sft.loss_on = 'foo': must be one of assistant, all"),
    (["sft.batch_size=0"], "sft.batch_size = 0: must be >= 1"),
    (["sft.stages.1.lr=0"], "sft.stages.1.lr = 0.0: must be > 0"),
    (["run.log_level=verbose"], "run.log_level = 'verbose': must be one of DEBUG"),
    (["reward.protocol=open_o3"], "reward.protocol = 'open_o3' and rollout.protocol = 'video_o3': must be the same"),
    (["rl.group_size=0"], "rl.group_size = 0: must be >= 1"),
    (["rl.lr=-0.1"], "rl.lr = -0.1: must be > 0"),
    (["rl.old_logprobs=on_policy", "rl.updates_per_batch=2"], "on_policy needs updates_per_batch: 1"),
    (["run.name=${nope.x}"], "'run.name': Interpolation key 'nope.x' not found"),
    (["ray.placement_timeout_s=0"], "ray.placement_timeout_s = 0.0: must be > 0 (seconds)"),
    (["reward.judge.max_retries=-1"], "reward.judge.max_retries = -1: must be an integer >= 0"),
])
def test_bad_values_are_one_line_naming_key_value_and_rule(overrides, fragment):
    with pytest.raises(RecipeError) as err:
        load_recipe(DEMO, overrides)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_yaml_errors_keep_line_and_column_and_a_folder_is_no_recipe(tmp_path):
    (tmp_path / "bad.yaml").write_text("run:\n  name: x\n  seed: [1\n")
    with pytest.raises(RecipeError, match=r"bad.yaml: not valid YAML \(line 4, column 1: "):
        load_recipe(tmp_path / "bad.yaml")
    with pytest.raises(RecipeError, match="is a folder, not a recipe file"):
        load_recipe(tmp_path)


def test_overrides_go_anywhere_on_the_line_in_order():
    args = parse_args(["eval", "R.yaml", "run.seed=1", "--model", "D", "rl.steps=2", "--limit", "3", "run.seed=5"])
    assert (args.recipe, args.model, args.limit) == ("R.yaml", "D", 3)
    assert args.overrides == ["run.seed=1", "rl.steps=2", "run.seed=5"]  # the last run.seed wins when merged
    args = parse_args(["submit", "R.yaml", "--address", "http://127.0.0.1:8265", "rl.steps=2"])
    assert args.overrides == ["rl.steps=2"] and args.address == "http://127.0.0.1:8265"


def test_interpolation_error_on_the_cli_is_one_line_exit_2():
    out = subprocess.run([sys.executable, "-m", "vo3rl.cli", "config", str(DEMO), "run.output_dir=${run.nme}/x"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == ["vo3rl config: error: 'run.output_dir': Interpolation key 'run.nme' not found"]
    out = subprocess.run([sys.executable, "-m", "vo3rl.cli", "eval", str(DEMO), "--limit", "1", "nonsense"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "unrecognized arguments: nonsense" in out.stderr


def test_paper_recipes_name_their_stages_and_need_the_sft_checkpoint():
    for name, stages in (("video_o3/sft_stage1", ["sft"]), ("video_o3/sft_stage2", ["sft"]),
                         ("open_o3_video/sft", ["sft"])):
        assert load_recipe(REPO / "recipes" / f"{name}.yaml").run.stages == stages
    for name in ("video_o3/rl", "open_o3_video/rl_gspo"):
        with pytest.raises(RecipeError, match="missing required value: rl.init_from"):
            load_recipe(REPO / "recipes" / f"{name}.yaml")
        assert load_recipe(REPO / "recipes" / f"{name}.yaml", ["rl.init_from=/ckpt/sft"]).run.stages == ["rl"]


def test_the_tiny_model_is_never_written_over_a_model_vo3rl_did_not_make(tmp_path):
    from vo3rl.model.tiny import NotOurModel, build_tiny_model

    real = tmp_path / "Qwen2.5-VL-7B-Instruct"
    real.mkdir()
    shards = {"model-00001-of-00002.safetensors": b"one", "model-00002-of-00002.safetensors": b"two",
              "config.json": b"{}"}
    for name, data in shards.items():
        (real / name).write_bytes(data)
    with pytest.raises(NotOurModel, match="did not write"):
        build_tiny_model(real)
    assert {p.name: p.read_bytes() for p in real.iterdir()} == shards  # untouched
    out = subprocess.run([sys.executable, "-m", "vo3rl.cli", "run", str(REPO / "recipes/tiny_cpu/sft.yaml"),
                          f"model.path={real}", "run.stages=[tiny_model]", "--no-training",
                          f"run.output_dir={tmp_path}/run"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "did not write" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert {p.name: p.read_bytes() for p in real.iterdir()} == shards


def test_sft_ranks_reserve_the_gpus_the_recipe_gives_them():
    recipe = load_recipe(REPO / "recipes" / "video_o3" / "sft_stage1.yaml")
    assert recipe.learner.ranks == 8 and recipe.sft.learner_gpus == 1
    with pytest.raises(RecipeError, match=r"sft.learner_gpus = -1.0: must be >= 0"):
        load_recipe(DEMO, ["sft.learner_gpus=-1"])


@pytest.mark.parametrize("address", [None, "auto"])
def test_worker_logs_reach_the_driver_unless_quieted(monkeypatch, address):
    import ray

    from vo3rl.config.schema import RayConfig
    from vo3rl.orchestration.ray_setup import start_ray

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    start_ray(RayConfig(address=address))
    start_ray(RayConfig(address=address, log_to_driver=False))
    assert [c["log_to_driver"] for c in calls] == [True, False]
