"""Cold-start SFT: bad examples are skipped with named reasons; the driver trains, checkpoints and
resumes where it stopped."""
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
