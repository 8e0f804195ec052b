"""An estimate, not a measurement: the step time and GPU count of an RL recipe on Qwen2.5-VL-7B, from the
model's published config, the recipe's sizes and published GPU throughputs.

    .venv/bin/python benchmarks/estimate_step.py [recipes/video_o3/rl.yaml] [--gpu h100] [--crops 3] …

What one step of the recipe does (docs/scale_out.md): P prompts x G trajectories, each a global view of
up to 16,384 vision tokens (methods.md: 2 fps, <= 768 frames), then `--crops` crop views of
`--crop-tokens` each (medium: 4,096) and a text turn of `--gen-tokens` per view, the whole context capped
at `rollout.max_context - rollout.reserve_tokens`. Costs, in FLOPs (a multiply-add = 2) and bytes:

- rollout prefill: every context token once through the LLM (2 x matmul parameters + attention) and every
  vision token's 4 patches through the ViT; the global view once per group (the group's members share
  the prompt and stay on one engine, so the prefix cache supplies it for the other G - 1);
- rollout decode: memory-bound; a decode step reads the weights and every running sequence's KV cache,
  and an engine's decoding lasts as long as its longest trajectory (`--tail`: longest / mean tokens);
- learner: forward + backward (3x forward) + the activation-checkpointing recompute (1x) over every
  token of every trajectory, the LM head at every position (log-probs); the ViT frozen: forward only;
- weight sync: the bf16 weights broadcast once over `--link-gbs` GB/s.

Throughputs are the vendors' published dense bf16 peaks and HBM bandwidths, derated by `--prefill-mfu`,
`--train-mfu` and `--decode-bw-eff` (typical achieved fractions; change them to what you measure).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vo3rl.config.loader import load_recipe  # noqa: E402
from vo3rl.model.lookalike import QWEN2_5_VL_7B  # noqa: E402

# Published: NVIDIA's data sheets (dense bf16 tensor-core peak, HBM bandwidth, memory).
GPUS = {"h100": {"tflops": 989.0, "hbm_tbs": 3.35, "mem_gb": 80.0},
        "h200": {"tflops": 989.0, "hbm_tbs": 4.8, "mem_gb": 141.0},
        "a100": {"tflops": 312.0, "hbm_tbs": 2.04, "mem_gb": 80.0}}
GLOBAL_VIEW_TOKENS = 16384  # methods.md: the first observation's vision-token cap
PATCHES_PER_TOKEN = 4  # the 2x2 spatial merge: 4 ViT patches (each over 2 frames) per vision token
BF16 = 2  # bytes


def model_sizes(config: dict) -> dict:
    """Matmul parameters per LLM layer, LM head, ViT (blocks + merger), KV bytes per token (bf16)."""
    d, ff, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    head_dim = d // config["num_attention_heads"]
    kv = config["num_key_value_heads"] * head_dim
    layer = 2 * d * d + 2 * d * kv + 3 * d * ff
    v = config["vision"]
    blocks = v["depth"] * (4 * v["hidden_size"] ** 2 + 3 * v["hidden_size"] * v["intermediate_size"])
    merged = v["hidden_size"] * v["spatial_merge_size"] ** 2
    merger = merged * merged + merged * v["out_hidden_size"]
    head = d * config["vocab_size"]
    total = layers * layer + 2 * head + blocks + merger  # untied embedding and LM head
    # Each vision token is 4 patches through the ViT blocks, then one merged row through the merger.
    vit_token_flops = PATCHES_PER_TOKEN * 2 * blocks + 2 * merger
    return {"d": d, "layers": layers, "llm_matmul": layers * layer, "head": head, "total": total,
            "vit_token_flops": vit_token_flops, "kv_bytes_per_token": 2 * layers * kv * BF16}


def estimate(recipe, args) -> dict:
    m, gpu = model_sizes(QWEN2_5_VL_7B), GPUS[args.gpu]
    rl, ro, le = recipe.rl, recipe.rollout, recipe.learner
    trajectories = rl.prompts_per_step * rl.group_size
    context_cap = ro.max_context - ro.reserve_tokens
    views = 1 + args.crops
    vision = min(GLOBAL_VIEW_TOKENS + args.crops * args.crop_tokens, context_cap)
    text = min(views * args.gen_tokens + args.prompt_tokens, context_cap - vision)
    context = vision + text
    generated = min(views, ro.max_turns) * args.gen_tokens
    flops_token = 2 * m["llm_matmul"]  # one forward of one token, without attention
    attention = lambda n: 2 * m["layers"] * m["d"] * n * n  # QK^T and AV of n causal tokens (n^2 / 2 pairs x 4)

    # Rollout: the global view once per group, the rest once per trajectory.
    global_view = min(GLOBAL_VIEW_TOKENS, vision)
    shared = rl.prompts_per_step * global_view * (flops_token + m["vit_token_flops"])
    prefill = shared + trajectories * ((context - global_view) * flops_token
                                       + (vision - global_view) * m["vit_token_flops"]
                                       + attention(context) - attention(global_view))
    engines = rl.rollout_workers
    engine_gpus = max(1, ro.tensor_parallel_size) * max(1, int(ro.worker_gpus or 1))
    prefill_s = prefill / (engines * engine_gpus * gpu["tflops"] * 1e12 * args.prefill_mfu)
    per_engine = trajectories / engines
    kv_read = per_engine * (context / 2) * m["kv_bytes_per_token"]  # the mean context over the decoding
    step_bytes = m["total"] * BF16 / engine_gpus + kv_read / engine_gpus
    decode_steps = generated * args.tail
    decode_s = decode_steps * step_bytes / (gpu["hbm_tbs"] * 1e12 * args.decode_bw_eff)
    kv_need_gb = per_engine * context * m["kv_bytes_per_token"] / 1e9
    kv_room_gb = engine_gpus * gpu["mem_gb"] * 0.9 - m["total"] * BF16 / 1e9

    # Learner: every token of every trajectory, forward + backward + recompute; ViT forward only.
    tokens = trajectories * context
    train = tokens * (4 * (flops_token + 2 * m["head"])) + trajectories * 4 * attention(context) \
        + trajectories * vision * m["vit_token_flops"]
    learner_gpus = le.ranks * max(1, int(rl.learner_gpus or 1))
    learner_s = train / (learner_gpus * gpu["tflops"] * 1e12 * args.train_mfu)
    sync_s = m["total"] * BF16 / (args.link_gbs * 1e9)
    rollout_s = prefill_s + decode_s
    return {"trajectories": trajectories, "context_tokens": context, "vision_tokens": vision,
            "generated_tokens": generated, "params_b": m["total"] / 1e9, "rollout_prefill_s": prefill_s,
            "rollout_decode_s": decode_s, "rollout_s": rollout_s, "learner_s": learner_s, "sync_s": sync_s,
            "step_sync_mode_s": rollout_s + learner_s + sync_s,
            "step_one_step_off_s": max(rollout_s, learner_s) + sync_s,
            "gpus": learner_gpus + engines * engine_gpus, "kv_need_gb_per_engine": kv_need_gb,
            "kv_room_gb_per_engine": kv_room_gb, "train_pflop": train / 1e15, "prefill_pflop": prefill / 1e15,
            "hours_sync_mode": rl.steps * (rollout_s + learner_s + sync_s) / 3600}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", nargs="?", default="recipes/video_o3/rl.yaml")
    parser.add_argument("--gpu", choices=sorted(GPUS), default="h100")
    parser.add_argument("--crops", type=int, default=3, help="crop views per trajectory")
    parser.add_argument("--crop-tokens", type=int, default=4096, help="vision tokens per crop (medium)")
    parser.add_argument("--gen-tokens", type=int, default=400, help="generated tokens per assistant turn")
    parser.add_argument("--prompt-tokens", type=int, default=300, help="system prompt, question, view lines")
    parser.add_argument("--tail", type=float, default=2.0, help="longest / mean generated tokens on an engine")
    parser.add_argument("--prefill-mfu", type=float, default=0.5)
    parser.add_argument("--train-mfu", type=float, default=0.4)
    parser.add_argument("--decode-bw-eff", type=float, default=0.6)
    parser.add_argument("--link-gbs", type=float, default=50.0, help="learner -> engines broadcast, GB/s")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe, ["rl.init_from=/ckpt/sft"])
    result = estimate(recipe, args)
    print(f"# estimate for {args.recipe} on {args.gpu} ({GPUS[args.gpu]}), assumptions: {vars(args)}")
    for key, value in result.items():
        print(f"{key:24s} {value:,.2f}" if isinstance(value, float) else f"{key:24s} {value:,}")


if __name__ == "__main__":
    main()
