"""Recipes: overrides, interpolation, extends, and rejection of bad input before any work starts."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vo3rl.config import Recipe, RecipeError, load_recipe, to_yaml


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def recipe_file(tmp_path):
    write(tmp_path / "base.yaml", """
        run:
          name: base
          seed: 1
        model:
          path: ${run.output_dir}/model
        wandb:
          project: p-base
    """)
    return write(tmp_path / "child.yaml", """
        extends: base.yaml
        run:
          name: child
        wandb:
          group: g1
    """)


def test_defaults_extends_and_interpolation(recipe_file):
    r = load_recipe(recipe_file)
    assert isinstance(r, Recipe)
    assert r.run.name == "child" and r.run.seed == 1  # child wins, base fills in
    assert r.wandb.project == "p-base" and r.wandb.group == "g1"
    assert r.model.path == "runs/child/model"  # ${run.output_dir} -> runs/${run.name}, resolved late
    assert r.data.synth_dir == "runs/child/data" and r.wandb.dir == ""  # "": each stage's own folder


def test_overrides_win_and_are_typed(recipe_file):
    r = load_recipe(recipe_file, ["run.seed=42", "run.name=over", "run.stages=[tiny_model]", "wandb.name=x"])
    assert r.run.seed == 42 and isinstance(r.run.seed, int)
    assert r.model.path == "runs/over/model"
    assert r.run.stages == ["tiny_model"]


@pytest.mark.parametrize(
    "override, fragment",
    [
        (["run.sed=3"], "unknown key 'run.sed' (did you mean 'run.seed'?)"),
        (["rn.seed=3"], "unknown key 'rn' (did you mean 'run'?)"),
        (["model.tiny.zzz=1"], "unknown key 'model.tiny.zzz'"),
        (["run.seed=abc"], "'run.seed'"),
        (["run.stages=[warp]"], "unknown stage 'warp'"),
        (["wandb.mode=sometimes"], "wandb.mode"),
        (["model.tiny.text_hidden=65"], "model.tiny"),
        (["seed"], "not of the form key.path=value"),
        (["rl.old_logprobs=on_policy", "rl.updates_per_batch=2"], "on_policy needs updates_per_batch: 1"),
    ],
)
def test_bad_overrides_are_rejected(recipe_file, override, fragment):
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe_file, override)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_key_in_file_names_the_file(tmp_path):
    bad = write(tmp_path / "bad.yaml", """
        model:
          path: m
          tinny: {}
    """)
    with pytest.raises(RecipeError, match=r"bad.yaml: unknown key 'model.tinny' \(did you mean 'model.tiny'\?\)"):
        load_recipe(bad)


def test_missing_required_value(tmp_path):
    with pytest.raises(RecipeError, match="missing required value: model.path"):
        load_recipe(write(tmp_path / "r.yaml", "run: {name: x}\n"))


def test_missing_file_bad_yaml_and_cycles(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(write(tmp_path / "broken.yaml", "run: [unclosed\n"))
    with pytest.raises(RecipeError, match="must be a mapping"):
        load_recipe(write(tmp_path / "list.yaml", "- 1\n- 2\n"))
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")


def test_yaml_round_trip(recipe_file, tmp_path):
    r = load_recipe(recipe_file, ["run.seed=5"])
    again = write(tmp_path / "again.yaml", to_yaml(r))
    assert load_recipe(again) == r


def test_every_shipped_recipe_loads_and_passes_every_check():
    from pathlib import Path

    from vo3rl.orchestration.checks import load_checked_recipe

    recipes = sorted(Path(__file__).parents[1].joinpath("recipes").rglob("*.yaml"))
    assert recipes
    for path in recipes:
        # The paper RL recipes require the SFT checkpoint they start from; everything else loads as is.
        needs = ["rl.init_from=/ckpt/sft"] if path.name in ("rl.yaml", "rl_gspo.yaml") and "tiny_cpu" not in str(path) else []
        load_checked_recipe(path, needs)


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "vo3rl.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_config_prints_resolved_recipe(recipe_file):
    out = run_cli("config", str(recipe_file), "run.seed=9")
    assert out.returncode == 0, out.stderr
    assert "seed: 9" in out.stdout and "path: runs/child/model" in out.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("config", "RECIPE", "run.sed=1"), "did you mean 'run.seed'"),
        (("config", "missing.yaml"), "recipe file not found: missing.yaml"),
        (("confg",), "unknown command 'confg' (did you mean 'config'?)"),
        (("run", "RECIPE", "run.stages=[bogus]"), "unknown stage 'bogus'"),
    ],
)
def test_cli_errors_are_one_line_exit_2(recipe_file, args, fragment):
    out = run_cli(*[str(recipe_file) if a == "RECIPE" else a for a in args])
    assert out.returncode == 2
    assert fragment in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_cli_help_lists_every_command():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("run", "sft", "rl", "eval", "data", "submit", "config", "tiny-model"):
        assert command in out.stdout


def test_overrides_reach_into_lists():
    r = load_recipe(Path(__file__).parents[1] / "recipes/tiny_cpu/sft.yaml", ["sft.stages.1.max_steps=3"])
    assert r.sft.stages[1].max_steps == 3 and r.sft.stages[0].max_steps != 3
    with pytest.raises(RecipeError, match="has 2 items"):
        load_recipe(Path(__file__).parents[1] / "recipes/tiny_cpu/sft.yaml", ["sft.stages.7.lr=1"])
    with pytest.raises(RecipeError, match="did you mean 'sft.stages.0.lr'"):
        load_recipe(Path(__file__).parents[1] / "recipes/tiny_cpu/sft.yaml", ["sft.stages.0.lrr=1"])
