"""Checks `vo3rl run` makes before any work: every input a stage reads exists (or an earlier stage makes
it), and the actors fit the local Ray it would start."""
import subprocess
import sys
from pathlib import Path

from vo3rl.config.loader import load_recipe
from vo3rl.orchestration.checks import eval_inputs, missing_inputs, placement_problems

ROOT = Path(__file__).resolve().parents[1]


def _recipe(*overrides, path="recipes/video_o3/rl.yaml"):
    return load_recipe(ROOT / path, ["rl.init_from=/nowhere/sft", *overrides])


def test_missing_checkpoint_and_data_are_named(tmp_path):
    problems = missing_inputs(_recipe(f"data.root={tmp_path}"))
    assert "rl.init_from = '/nowhere/sft': no such model folder (nothing is downloaded: give a local checkpoint folder)" in problems
    assert f"data.train = '{tmp_path}/rl_train.jsonl': no such file" in problems


def test_a_hub_name_is_not_a_model_folder(tmp_path):
    recipe = load_recipe(ROOT / "recipes/video_o3/sft_stage1.yaml", [f"data.root={tmp_path}"])
    assert any(p.startswith("model.path = 'Qwen2.5-VL-7B-Instruct': no such model folder") for p in missing_inputs(recipe))


def test_a_folder_without_config_is_not_a_checkpoint(tmp_path):
    (tmp_path / "rl_train.jsonl").write_text("")
    (tmp_path / "rl_eval.jsonl").write_text("")
    (tmp_path / "ckpt").mkdir()
    problems = missing_inputs(_recipe(f"data.root={tmp_path}", f"rl.init_from={tmp_path}/ckpt"))
    assert problems == [f"rl.init_from = '{tmp_path}/ckpt': the folder holds no config.json (not a model checkpoint)"]
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    assert missing_inputs(_recipe(f"data.root={tmp_path}", f"rl.init_from={tmp_path}/ckpt")) == []


def test_inputs_made_by_earlier_stages_are_not_required(tmp_path):
    recipe = load_recipe(ROOT / "recipes/tiny_cpu/demo.yaml", [f"run.output_dir={tmp_path}/demo"])
    assert missing_inputs(recipe) == []  # data, model and the SFT checkpoint all come from its own stages
    alone = load_recipe(ROOT / "recipes/tiny_cpu/demo.yaml", [f"run.output_dir={tmp_path}/demo", "run.stages=[rl]"])
    assert {p.split(" = ")[0] for p in missing_inputs(alone)} == {"rl.init_from", "data.train", "data.eval"}


def test_placement_that_cannot_fit_a_local_ray_is_refused():
    local = ["ray.address=null", "ray.num_cpus=2"]
    problems = placement_problems(_recipe(*local, "rl.rollout_workers=2", "rollout.worker_cpus=1",
                                          "rollout.worker_gpus=0", "rl.learner_gpus=0"), local_gpus=0)
    assert problems == ["rl.rollout_workers x rollout.worker_cpus = 2 CPUs: must be fewer than ray.num_cpus = 2 "
                        "(the learner ranks need some)"]
    gpus = placement_problems(_recipe(*local, "rl.rollout_workers=1", "learner.ranks=2"), local_gpus=1)
    assert len(gpus) == 1 and gpus[0].startswith("the RL actors reserve 3 GPUs")
    assert placement_problems(_recipe("ray.address=auto"), local_gpus=0) == []  # a cluster's size is known there


def test_run_refuses_before_writing_anything(tmp_path):
    result = subprocess.run([sys.executable, "-m", "vo3rl.cli", "run", str(ROOT / "recipes/video_o3/rl.yaml"),
                             "rl.init_from=/nowhere/sft", f"data.root={tmp_path}/data", f"run.output_dir={tmp_path}/out"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "rl.init_from = '/nowhere/sft': no such model folder" in result.stderr
    assert not (tmp_path / "out").exists()


def _checkpoint(folder: Path) -> Path:
    """A vo3rl checkpoint's outline: marker and hf/config.json (enough for the folder rule)."""
    (folder / "hf").mkdir(parents=True)
    (folder / "hf" / "config.json").write_text("{}")
    (folder / "vo3rl_checkpoint.json").write_text("{}")
    return folder


def test_a_checkpoint_step_is_evaluated_through_its_hf_folder_and_named_in_recipe_keys(tmp_path):
    step = _checkpoint(tmp_path / "run" / "step_4")
    (tmp_path / "rl_train.jsonl").write_text("")
    (tmp_path / "rl_eval.jsonl").write_text("")
    recipe = _recipe(f"data.root={tmp_path}", f"rl.init_from={step}")
    assert eval_inputs(recipe, str(step)) == (step / "hf", [])
    assert eval_inputs(recipe, str(step / "hf")) == (step / "hf", [])
    # A recipe key is not rewritten behind the user's back; the message says where the model is.
    assert missing_inputs(recipe) == [f"rl.init_from = '{step}': the folder holds no config.json (not a model "
                                      f"checkpoint) (a vo3rl checkpoint: its model is '{step}/hf')"]


def test_eval_names_a_missing_model_and_eval_file(tmp_path):
    recipe = _recipe(f"data.root={tmp_path}")
    folder, problems = eval_inputs(recipe, str(tmp_path / "nope"))
    assert problems == [f"--model = '{tmp_path}/nope': no such folder (give an HF model folder or a vo3rl checkpoint step_N)",
                        f"data.eval = '{tmp_path}/rl_eval.jsonl': no such file"]
    result = subprocess.run([sys.executable, "-m", "vo3rl.cli", "eval", str(ROOT / "recipes/video_o3/rl.yaml"),
                             "--model", str(tmp_path / "nope"), "rl.init_from=/x", f"data.root={tmp_path}",
                             f"run.output_dir={tmp_path}/out"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("vo3rl eval: error: --model = ")
    assert not (tmp_path / "out").exists()
