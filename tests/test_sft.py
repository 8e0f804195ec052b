"""Cold-start SFT: bad examples are skipped with named reasons; the driver trains, checkpoints and
resumes where it stopped; its evaluations before and after are the one evaluation path's."""
import json
from dataclasses import replace

import pytest
from learner_fixtures import BUDGETS, three_video_example, write_colour_mp4

from vo3rl.data.chat import dumps_example


@pytest.fixture(scope="module")
def presets():
    from vo3rl.video.budgets import PRESET_NAMES, preset

    return {name: preset(name, **BUDGETS) for name in PRESET_NAMES}


def test_bad_examples_are_skipped_and_counted(tokenizer, presets, tmp_path):
    from vo3rl.sft.data import load_sft_trajectories

    video = write_colour_mp4(str(tmp_path / "v.mp4"))
    good = three_video_example(video, "good")
    no_answer = three_video_example(video, "no_assistant")
    no_answer.turns = [no_answer.turns[0]]
    missing = three_video_example(str(tmp_path / "gone.mp4"), "missing_video")
    long = three_video_example(video, "long", answer_text="A " * 400)
    lines = [dumps_example(e) for e in (good, no_answer, missing, long)] + ["{not json"]
    (tmp_path / "sft.jsonl").write_text("\n".join(lines) + "\n")
    split = load_sft_trajectories(str(tmp_path / "sft.jsonl"), tokenizer, presets, max_length=600)
    assert [t.sample_id for t in split.train] == ["good"]
    counts = split.skips.counts
    assert counts["no_assistant_turn"] == 1 and counts["missing"] == 1 and counts["too_long"] == 1
    assert split.skips.total == 4  # and the undecodable line
    assert {e[0] for e in split.skips.examples} >= {"no_assistant", "missing_video", "long"}


def test_held_out_split_is_stable():
    from vo3rl.sft.data import held_out

    ids = [f"s{i}" for i in range(2000)]
    chosen = [i for i in ids if held_out(i, 0.1)]
    assert 150 < len(chosen) < 250 and chosen == [i for i in ids if held_out(i, 0.1)]
    assert not any(held_out(i, 0.0) for i in ids)


def test_batch_order_is_reproducible_and_covers_every_example():
    from vo3rl.sft.driver import batch_order

    order = batch_order(10, 4, 5, seed=3)
    assert order == batch_order(10, 4, 5, seed=3) and order != batch_order(10, 4, 5, seed=4)
    assert all(len(b) == 4 for b in order)
    first_pass = [i for b in order for i in b][:10]
    assert sorted(first_pass) == list(range(10))


def test_sft_driver_trains_checkpoints_and_resumes(tokenizer, tiny_model_dir, tmp_path):
    from vo3rl.config import load_recipe
    from vo3rl.orchestration.sft_run import train as run_sft
    from vo3rl.train.checkpoint import validate_checkpoint

    videos = [write_colour_mp4(str(tmp_path / f"v{i}.mp4"), seed=i) for i in range(2)]
    examples = [three_video_example(videos[i % 2], f"s{i}", answer_text="AB"[i % 2]) for i in range(6)]
    (tmp_path / "sft.jsonl").write_text("".join(dumps_example(e) + "\n" for e in examples))
    budgets = {name: dict(BUDGETS) for name in ("global", "coarse", "medium", "fine")}
    overrides = [f"run.output_dir={tmp_path}/run", f"model.path={tiny_model_dir}", f"data.root={tmp_path}",
                 f"data.train={tmp_path}/sft.jsonl", "wandb.mode=offline", "learner.lr=1e-3",
                 "sft.batch_size=2", "sft.eval_fraction=0.0", "sft.gen_eval=false", "sft.save_every=1",
                 "sft.log_every=1", "sft.eval_every=0"]
    recipe = load_recipe(None, overrides)
    recipe.video.presets = budgets
    recipe.sft.stages = [replace(recipe.sft.stages[0], name="stage1", train=f"{tmp_path}/sft.jsonl", max_steps=2),
                         replace(recipe.sft.stages[0], name="stage2", train=f"{tmp_path}/sft.jsonl", max_steps=1,
                                 tdam_ratio=1.0)]
    summary = run_sft(recipe)
    out = tmp_path / "run" / "sft"
    assert [s["steps"] for s in summary["stages"]] == [2, 1]
    assert (out / "final").resolve() == (out / "step_3" / "hf").resolve()  # the model the next stage takes
    assert validate_checkpoint(out / "step_3")["step"] == 3
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "train/loss" in r]
    assert [r["step"] for r in train] == [1, 2, 3] and train[-1]["train/tdam"] == 1.0
    # Resume from step 2 (the end of stage 1): only stage 2's single step runs again, with the same loss.
    (out / "metrics.jsonl").unlink()
    recipe.sft.resume = str(out / "step_2")
    run_sft(recipe)
    again = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    again = [r for r in again if "train/loss" in r]
    assert [r["step"] for r in again] == [3]
    assert again[0]["train/loss"] == pytest.approx(train[-1]["train/loss"], rel=1e-5)


def test_sft_evaluates_before_and_after_through_the_evaluator_it_is_given(tokenizer, tiny_model_dir, tmp_path):
    """The driver hands the evaluator the base model and then its final checkpoint's hf/, with the eval
    file's rows as read with `data.format`; the `eval/` metrics land in the summary and metrics.jsonl."""
    from vo3rl.config import load_recipe
    from vo3rl.data.schema import Sample
    from vo3rl.data.seeker import sample_to_seeker_row
    from vo3rl.sft.driver import run_sft
    from vo3rl.train.learner import Learner
    from vo3rl.video.types import VideoRef

    video = write_colour_mp4(str(tmp_path / "v.mp4"), seed=0)
    (tmp_path / "sft.jsonl").write_text(dumps_example(three_video_example(video, "s0")) + "\n")
    rows = [sample_to_seeker_row(Sample(id=f"e{i}", video=VideoRef(video), question="Which?", duration_s=8.0,
                                        options=["A. red", "B. blue"], answer="A")) for i in range(3)]
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    recipe = load_recipe(None, [f"run.output_dir={tmp_path}/run", f"model.path={tiny_model_dir}", "wandb.mode=disabled",
                                f"sft.gen_eval_file={tmp_path}/eval.jsonl", "sft.gen_eval_samples=2",
                                "sft.gen_eval_samples_before=1", "sft.batch_size=1", "sft.eval_fraction=0.0",
                                "sft.eval_every=0", "sft.log_every=1"])
    recipe.video.presets = {name: dict(BUDGETS) for name in ("global", "coarse", "medium", "fine")}
    recipe.sft.stages = [replace(recipe.sft.stages[0], name="stage1", train=f"{tmp_path}/sft.jsonl", max_steps=1)]
    calls = []

    def evaluate(model, samples, path):
        calls.append((model, [s.id for s in samples], path.name))
        return {"eval/accuracy": 0.5 * len(calls), "eval/format": 1.0, "eval/n": len(samples)}

    summary = run_sft(recipe, lambda steps, tok: Learner(recipe.model.path, recipe.learner, steps, tok), evaluate)
    out = tmp_path / "run" / "sft"
    assert calls == [(str(tiny_model_dir), ["e0"], "gen_eval_before.jsonl"),
                     (str(out / "step_1" / "hf"), ["e0", "e1"], "gen_eval_after.jsonl")]
    assert summary["before"]["eval/accuracy"] == 0.5 and summary["after"]["eval/accuracy"] == 1.0
    assert summary["after"]["eval/skipped_rows"] == 0  # the bad last line is beyond the two rows read
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [(r["step"], r["eval/accuracy"]) for r in logged if "eval/accuracy" in r]
    assert evals == [(0, 0.5), (1, 1.0)]
    with pytest.raises(ValueError, match="no evaluator"):
        run_sft(recipe, lambda steps, tok: Learner(recipe.model.path, recipe.learner, steps, tok))


@pytest.mark.slow
def test_sft_evaluation_runs_on_the_rollout_workers_with_rls_metric_names(tmp_path):
    """`vo3rl sft` on the tiny recipe, 2 steps: its before/after evaluations are vLLM episodes on a
    rollout worker, scored by the reward worker, with the metric names RL's evaluation logs."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parents[1]
    env = dict(os.environ, WANDB_MODE="offline", VO3RL_PROGRESS="0")
    result = subprocess.run(
        [sys.executable, "-m", "vo3rl.cli", "sft", "recipes/tiny_cpu/sft.yaml", f"run.output_dir={tmp_path}/run",
         "data.synth.n_train_videos=4", "data.synth.n_eval_videos=2", "sft.stages.0.max_steps=1",
         "sft.stages.1.max_steps=1", "sft.batch_size=2", "sft.gen_eval_samples=2", "sft.gen_eval_samples_before=1",
         "rollout.max_new_tokens=24", "rollout.eval_max_turns=2", "ray.temp_dir=/tmp/vo3rl-sfte"],
        cwd=root, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    brief = json.loads(result.stdout[result.stdout.rindex('{\n  "wall_s"'):])  # after the workers' log lines
    assert brief["before"]["eval/n"] == 1 and brief["after"]["eval/n"] == 2
    summary = json.loads((tmp_path / "run" / "sft" / "summary.json").read_text())
    rl_names = {"eval/total", "eval/accuracy", "eval/format", "eval/turns", "eval/tool_calls", "eval/vision_tokens", "eval/n", "eval/seconds"}
    assert rl_names <= set(summary["after"]), sorted(summary["after"])
    episodes = [json.loads(line) for line in (tmp_path / "run" / "sft" / "gen_eval_after.jsonl").read_text().splitlines()]
    assert len(episodes) == 2 and all({"prediction", "views", "components"} <= set(e) for e in episodes)
    logged = [json.loads(line) for line in (tmp_path / "run" / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "eval/n" in r] == [0, 2]
