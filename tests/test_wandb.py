"""W&B as users expect: the environment's WANDB_MODE wins over the recipe, `wandb.dir` is used, and a
resumed stage continues its run (the id is kept in the checkpoint's driver state)."""
from __future__ import annotations

from vo3rl.config import load_recipe
from vo3rl.metrics import MetricsLog, open_wandb, wandb_mode


def test_the_environment_mode_wins(monkeypatch):
    recipe = load_recipe(None, ["model.path=/m", "wandb.mode=online"])
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode(recipe) == "disabled" and open_wandb(recipe, "/nowhere", "rl") is None
    monkeypatch.delenv("WANDB_MODE")
    assert wandb_mode(recipe) == "online"


def test_dir_is_used_and_a_resumed_run_keeps_its_id(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    recipe = load_recipe(None, ["model.path=/m", "run.name=wb", f"wandb.dir={tmp_path}/wb"])
    first = MetricsLog(tmp_path / "m.jsonl", open_wandb(recipe, tmp_path / "stage", "rl"))
    run_id = first.wandb_id
    first.log({"x": 1.0}, step=1)
    first.close()
    assert run_id and list((tmp_path / "wb" / "wandb").glob(f"offline-run-*-{run_id}"))
    again = open_wandb(recipe, tmp_path / "stage", "rl", resume_id=run_id)
    try:
        assert again.id == run_id
    finally:
        again.finish()
    assert not (tmp_path / "stage").exists()  # nothing written outside wandb.dir


def test_without_dir_each_stage_keeps_its_own_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    recipe = load_recipe(None, ["model.path=/m", "run.name=wb2"])
    run = open_wandb(recipe, tmp_path / "sft", "sft")
    run.finish()
    assert list((tmp_path / "sft" / "wandb").glob("offline-run-*"))
