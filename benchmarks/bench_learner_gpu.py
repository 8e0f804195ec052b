"""GPU learner benchmark: Qwen2.5-VL 3B and 7B configurations (random init), training steps of 8k and
32k tokens with TDAM on and off, SDPA vs FlexAttention, packing, through the real `Learner`.

    python benchmarks/bench_learner_gpu.py --out results.json [--budget-s 500] [--models 3b,7b]
    python benchmarks/bench_learner_gpu.py --tiny --out tiny.json     # CPU, the tiny model, < 1 min

One command runs everything in priority order and skips (and records) what the time budget leaves no
room for: the card's bf16 matmul peak (8192³ products), then per model (3B first) the bf16 agreement
of FlexAttention and SDPA TDAM log-probs (max |difference| over the scored tokens of an 8k step), then
every configuration of (tokens per step) × (TDAM on: flex, sdpa | off: flex packed, flex, sdpa, and
sdpa packed at 8k only — a packed row under SDPA is an L×L boolean mask). Per configuration it prints
step seconds (median of the timed steps after one warm-up step, which also compiles FlexAttention),
real tokens per second, peak GPU memory (GiB allocated), MFU and padded/real tokens; the JSON file is
rewritten after each, so a run cut short keeps what it measured.

The learner is the project's FSDP2 learner (`vo3rl.train.learner.Learner`) on a one-rank process group,
so the bf16 mixed-precision policy (bf16 compute, fp32 master weights and gradient reduction) is the
multi-GPU path; activation checkpointing of the decoder layers is on; the vision tower is frozen (the
paper recipes' setting). `--no-shard` runs the unsharded autocast path instead; `--backend megatron`
the Megatron learner when it exists in this checkout. The 7B is cut to the depth that fits the card
with AdamW state (printed). The data are synthetic Video-o3 trajectories (a global video, two crops,
three assistant turns with two groundings and an answer, so TDAM has blocks): token ids are random,
videos are random pixels of the shapes the trajectories reserve (the benchmark measures the learner,
not decoding). The tokenizer is a stand-in holding only Qwen2.5-VL's special tokens at their real ids.

MFU = model FLOPs per step / (step seconds × measured peak). Model FLOPs (padding and the activation
recompute not counted): 6·N·T for the decoder's matmul parameters N over T real tokens; 6·layers·hidden·
Σ s² for causal attention over trajectories of s tokens (half the standard 12·layers·hidden·s per
token, which counts the full square); 6·vocab·hidden per scored token for the LM head (it runs only
there); 2·N_vision per vision patch for the frozen tower's forward (its attention left out).

Needs torch and transformers (and vo3rl's pure-Python dependencies: omegaconf); not vLLM, Ray or a
video decoder. `--tiny` runs the same code on CPU with the tiny model, fp32 and SDPA training (torch's
FlexAttention has no CPU backward), so tests/test_bench_learner_gpu.py can run it.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vo3rl.model.lookalike import QWEN2_5_VL_7B  # noqa: E402

# Qwen2.5-VL-3B-Instruct's config.json: the values that size the model (the rest is the 7B's layout).
QWEN2_5_VL_3B = {**QWEN2_5_VL_7B, "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008,
                 "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2,
                 "tie_word_embeddings": True, "vision": {**QWEN2_5_VL_7B["vision"], "out_hidden_size": 2048}}
PUBLISHED = {"3b": QWEN2_5_VL_3B, "7b": QWEN2_5_VL_7B}
PATCH_FEATURES = 3 * 2 * 14 * 14  # channels × temporal patch × 14 × 14 pixels per vision patch
TEXT_IDS = 151_000  # random text ids stay below the special tokens (151643...)
START = time.perf_counter()
MODEL_START_S = 90  # a model is built only with this much of the budget left (build, check, one step)


def say(message: str) -> None:
    print(f"[{time.perf_counter() - START:6.1f} s] {message}", flush=True)


# -- the model ------------------------------------------------------------------------------------
def hf_config(name: str, layers: int | None = None):
    """A transformers Qwen2_5_VLConfig of the published `name` ("3b", "7b"; "tiny": vo3rl's tiny model),
    with `layers` decoder layers when given."""
    from transformers import Qwen2_5_VLConfig

    if name == "tiny":
        from vo3rl.config.model import TinyModelConfig
        from vo3rl.model.tiny import qwen2_5_vl_config

        tiny = TinyModelConfig()
        return qwen2_5_vl_config(TinyModelConfig(text_layers=layers or tiny.text_layers))
    p = PUBLISHED[name]
    ids = {k: p[k] for k in ("bos_token_id", "eos_token_id", "vision_start_token_id", "vision_end_token_id",
                             "image_token_id", "video_token_id")}
    text = dict(vocab_size=p["vocab_size"], hidden_size=p["hidden_size"], intermediate_size=p["intermediate_size"],
                num_hidden_layers=layers or p["num_hidden_layers"], num_attention_heads=p["num_attention_heads"],
                num_key_value_heads=p["num_key_value_heads"], max_position_embeddings=p["max_position_embeddings"],
                rms_norm_eps=p["rms_norm_eps"], tie_word_embeddings=p["tie_word_embeddings"],
                rope_parameters={"rope_type": "default", "rope_theta": p["rope_theta"],
                                 "mrope_section": p["mrope_section"]}, pad_token_id=151643, **ids)
    return Qwen2_5_VLConfig(text_config=text, vision_config=dict(p["vision"]),
                            tie_word_embeddings=p["tie_word_embeddings"], pad_token_id=151643, **ids)


def parameter_counts(config) -> dict:
    """Matmul parameters: per decoder layer, the embedding (and an untied head), the vision tower."""
    t, v = config.text_config, config.vision_config
    d, kv = t.hidden_size, t.num_key_value_heads * (t.hidden_size // t.num_attention_heads)
    layer = 2 * d * d + 2 * d * kv + 3 * d * t.intermediate_size
    embed = t.vocab_size * d * (1 if t.tie_word_embeddings else 2)
    vision_block = 4 * v.hidden_size ** 2 + 3 * v.hidden_size * v.intermediate_size
    merged = v.hidden_size * 4
    vision = v.depth * vision_block + merged * merged + merged * v.out_hidden_size
    return {"layer": layer, "layers": t.num_hidden_layers, "embed": embed, "vision": vision}


def fitting_layers(config, memory_bytes: float, tokens: int, sharded: bool, chunk: int = 2048) -> int:
    """The most decoder layers (at most the published depth) whose training state fits `memory_bytes`:
    16 bytes per trainable parameter (fp32 weight, gradient, two AdamW moments), 4 per frozen vision
    parameter, the checkpointed layer inputs, one layer's recompute and backward, the LM head chunk."""
    t = config.text_config
    counts = parameter_counts(config)
    act = 2 if sharded else 4  # the residual stream is bf16 under FSDP2's policy, fp32 under autocast
    fixed = (16 * counts["embed"] + 4 * counts["vision"] + tokens * (10 * t.hidden_size + 8 * t.intermediate_size) * 2
             + 3 * chunk * t.vocab_size * 4 + 6 * 2**30)
    per_layer = 16 * counts["layer"] + tokens * t.hidden_size * act
    return int(max(1, min(t.num_hidden_layers, (0.92 * memory_bytes - fixed) // per_layer)))


def write_random_model(folder: Path, config) -> Path:
    """A model folder with `config` and an empty weights file: transformers initialises every missing
    weight at load (random init, nothing downloaded, no multi-GB file written)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    save_file({}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def stand_in_tokenizer():
    """A tokenizer of Qwen2.5-VL's special tokens only, at their real ids (the learner reads the pad id
    and builds the video processor from it; the benchmark's text ids are random)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from vo3rl.model.tokenizer import CHAT_TEMPLATE, FIRST_SPECIAL_ID, SPECIAL_TOKENS

    vocab = {token: FIRST_SPECIAL_ID + i for i, token in enumerate(SPECIAL_TOKENS)}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>")),
                                        pad_token="<|endoftext|>", eos_token="<|im_end|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# -- the data -------------------------------------------------------------------------------------
def synthetic_trajectory(tokens: int, seed: int, side: int):
    """A Video-o3 trajectory of about `tokens` tokens: prompt + global video (35 %), a grounding turn, a
    crop (20 %), a second grounding, a second crop (20 %), the answer; videos are `side`×`side` patch
    grids (side²/4 tokens per temporal patch)."""
    from vo3rl.agent.trajectory import Role, TagTokens, Trajectory, VideoSpan
    from vo3rl.video.types import SamplingSpec, VideoRef

    rng = np.random.default_rng(seed)
    per_patch = side * side // 4
    ids, roles, videos, tags = [], [], [], []

    def text(n, role):
        ids.extend(rng.integers(0, TEXT_IDS, size=max(1, int(n))).tolist())
        roles.extend([role] * max(1, int(n)))

    def video(share, role, turn):
        t = max(1, round(tokens * share / per_patch))
        ids.append(151652)
        roles.append(role)
        start = len(ids)
        ids.extend([151656] * (t * per_patch))
        roles.extend([role] * (t * per_patch))
        videos.append(VideoSpan(VideoRef(f"synthetic/{seed}/{len(videos)}.mp4"), SamplingSpec(), start, len(ids),
                                t * per_patch, (t, side, side), 2 * t, turn))
        ids.append(151653)
        roles.append(role)

    def tagged(tag, n, turn):
        start = len(ids)
        text(n, Role.ASSISTANT)
        tags.append(TagTokens(tag, turn, start, len(ids)))

    text(0.05 * tokens, Role.PROMPT)
    video(0.35, Role.PROMPT, 0)
    text(0.03 * tokens, Role.PROMPT)
    for turn, crop in ((1, 0.20), (2, 0.20)):
        text(0.04 * tokens, Role.ASSISTANT)  # the turn's <think>
        tagged("grounding", 0.01 * tokens, turn)
        video(crop, Role.OBSERVATION, turn)
        text(0.01 * tokens, Role.OBSERVATION)
    text(0.04 * tokens, Role.ASSISTANT)
    tagged("answer", 0.01 * tokens, 3)
    return Trajectory(f"bench-{seed}", np.asarray(ids, dtype=np.int32), np.asarray(roles, dtype=np.uint8),
                      videos=videos, tags=tags, assistant_texts=["", "", ""])


class RandomVideos:
    """Stands in for the learner's VideoMaterialiser: seeded random pixels of each span's grid, made
    once per span and kept (the same inputs for every configuration)."""

    def __init__(self):
        self.pixels: dict[str, torch.Tensor] = {}

    def inputs(self, trajectories):
        from vo3rl.model.video_inputs import VideoInputs

        spans = [v for t in trajectories for v in sorted(t.videos, key=lambda v: v.start)]
        if not spans:
            return None, []
        for span in spans:
            if span.ref.path not in self.pixels:
                generator = torch.Generator().manual_seed(zlib.crc32(span.ref.path.encode()))
                self.pixels[span.ref.path] = torch.randn(int(np.prod(span.grid_thw)), PATCH_FEATURES,
                                                         generator=generator)
        grid = torch.tensor([list(s.grid_thw) for s in spans], dtype=torch.long)
        # Two frames per temporal patch at 2 fps: one second per grid step.
        return VideoInputs(torch.cat([self.pixels[s.ref.path] for s in spans]), grid, [1.0] * len(spans)), []


def step_trajectories(tokens: int, side: int, seed: int) -> list:
    """A few trajectories of unequal lengths adding up to about `tokens` (so padded rows pad)."""
    shares = (0.4, 0.35, 0.25) if tokens <= 16384 else (0.31, 0.27, 0.23, 0.19)
    return [synthetic_trajectory(int(tokens * s), seed + i, side) for i, s in enumerate(shares)]


def model_flops(config, trajectories) -> float:
    """Model FLOPs of one training step over `trajectories` (module docstring)."""
    t = config.text_config
    counts = parameter_counts(config)
    lengths = np.array([len(x) for x in trajectories], dtype=np.float64)
    scored = sum(int(x.loss_mask()[1:].sum()) for x in trajectories)
    patches = sum(int(np.prod(v.grid_thw)) for x in trajectories for v in x.videos)
    return (6 * counts["layer"] * counts["layers"] * lengths.sum()
            + 6 * counts["layers"] * t.hidden_size * float((lengths ** 2).sum())
            + 6 * t.vocab_size * t.hidden_size * scored + 2 * counts["vision"] * patches)


# -- measuring ------------------------------------------------------------------------------------
def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device, dtype, size: int, repeats: int) -> float:
    """Measured matmul throughput (FLOP/s) of `size`³ products in `dtype` on `device`."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size ** 3 * repeats / (time.perf_counter() - start)


def peak_memory_gib(device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # the process's peak RSS


def set_attention(learner, attention: str) -> None:
    """Switch the learner's text attention in place (rebuilding a 3B learner per setting costs minutes)."""
    from vo3rl.train.attention import install_attention

    learner.attention = install_attention(learner.model, attention, learner.device)


def run_config(learner, trajectories, config, peak: float, tdam: bool, attention: str, packing: bool,
               steps: int) -> dict:
    """Time `steps` train steps (after one warm-up) of one configuration."""
    if attention != "megatron":
        set_attention(learner, attention)
    learner.cfg.packing = packing
    device = learner.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, metrics = [], {}
    for _ in range(steps + 1):  # the first step warms up (and compiles FlexAttention)
        sync(device)
        start = time.perf_counter()
        metrics = learner.train_step(trajectories, use_tdam=tdam)
        sync(device)
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times[1:])
    tokens = sum(len(t) for t in trajectories)
    return {"step_s": step_s, "warmup_s": times[0], "tokens_per_s": tokens / step_s,
            "peak_mem_gib": peak_memory_gib(device), "mfu": model_flops(config, trajectories) / step_s / peak,
            "tokens": tokens, "padded_tokens": metrics["padded_tokens"], "loss": metrics["loss"]}


def flex_vs_sdpa(learner, trajectories) -> dict:
    """Per-token TDAM log-probs under SDPA and FlexAttention in the learner's compute dtype."""
    scored = {}
    for attention in ("sdpa", "flex"):
        set_attention(learner, attention)
        logprobs, _ = learner.logprobs(trajectories, with_entropy=False, loss_on="assistant", use_tdam=True)
        scored[attention] = np.concatenate([lp[~np.isnan(lp)] for lp in logprobs])
    diff = np.abs(scored["sdpa"] - scored["flex"])
    return {"tokens": int(diff.size), "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "mean_abs_logprob": float(np.abs(scored["sdpa"]).mean()), "bf16": bool(learner.bf16)}


def configurations(tokens: int, device, backend: str) -> list[tuple[bool, str, bool]]:
    """(tdam, attention, packing) to run at `tokens` per step, most telling first."""
    if backend == "megatron":
        return [(True, "megatron", False), (False, "megatron", False)]
    runs = [(True, "flex", False), (True, "sdpa", False), (False, "flex", True), (False, "flex", False),
            (False, "sdpa", False)]
    return runs + [(False, "sdpa", True)] if tokens <= 8192 else runs


def make_learner(backend: str, folder: Path, tokens: int, tiny: bool, tokenizer):
    from vo3rl.config.learner import LearnerConfig

    cfg = LearnerConfig(lr=1e-6, warmup_ratio=0.0, micro_batch_tokens=tokens, grad_ckpt=not tiny, freeze_vision=True,
                        backend=backend)
    if backend == "megatron":
        from vo3rl.train.megatron.learner import MegatronLearner as Learner  # ImportError: not in this checkout
    else:
        from vo3rl.train.learner import Learner
    learner = Learner(folder, cfg, total_steps=1000, tokenizer=tokenizer)
    learner.videos = RandomVideos()
    return learner


def init_one_rank(device) -> None:
    """A one-rank process group, so the learner shards with FSDP2 (NCCL on GPU, gloo on CPU)."""
    import socket

    import torch.distributed as dist

    if dist.is_initialized():
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if device.type == "cuda":
        torch.cuda.set_device(0)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=0, world_size=1)


def model_depth(name: str, args, memory: float | None, token_sizes: list[int]) -> int:
    """The published depth, or what fits the card (the 7B: `--layers-7b` when given)."""
    layers = hf_config(name).text_config.num_hidden_layers
    if name == "7b" and args.layers_7b:
        return args.layers_7b
    if name != "tiny" and memory is not None:
        layers = min(layers, fitting_layers(hf_config(name), memory, max(token_sizes), sharded=not args.no_shard))
    return layers


def bench_model(name: str, args, env: dict, out: dict, save) -> None:
    """Build one model's learner, check FlexAttention against SDPA, run its configurations."""
    device, token_sizes, side = env["device"], env["token_sizes"], env["side"]
    layers = model_depth(name, args, env["memory"], token_sizes)
    config = hf_config(name, layers)
    published = PUBLISHED.get(name, {}).get("num_hidden_layers", layers)
    counts = parameter_counts(config)
    out["models"][name] = {"layers": layers, "published_layers": published, "decoder_params": counts["layer"] * layers,
                           "embed_params": counts["embed"], "vision_params": counts["vision"]}
    reduced = " (reduced to fit one card with AdamW)" if layers < published else ""
    say(f"{name}: {layers} of {published} layers{reduced}, building (random init) ...")
    try:
        learner = make_learner(args.backend, write_random_model(Path(env["tmp"]) / name, config), max(token_sizes),
                               args.tiny, env["tokenizer"])
    except Exception as error:  # noqa: BLE001 (recorded; the other model may still run)
        why = f"backend {args.backend}: {type(error).__name__}: {str(error)[:300]}"
        out["skipped"].append({"model": name, "why": why})
        say(f"{name}: skipped ({why})")
        return
    say(f"{name}: built; bf16 {learner.bf16}")
    if args.backend == "fsdp2":
        say(f"{name}: FlexAttention vs SDPA TDAM log-probs at {min(token_sizes)} tokens ...")
        try:
            check = flex_vs_sdpa(learner, step_trajectories(min(token_sizes), side, seed=1))
            say(f"{name}: FlexAttention vs SDPA TDAM log-probs ({'bf16' if check['bf16'] else 'fp32'}, "
                f"{check['tokens']} scored tokens): max |diff| {check['max_abs_diff']:.4f}, mean "
                f"{check['mean_abs_diff']:.5f} (mean |log-prob| {check['mean_abs_logprob']:.2f})")
        except Exception as error:  # noqa: BLE001 (recorded; the timings may still run)
            check = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
            say(f"{name}: FlexAttention vs SDPA check failed: {check['error']}")
        out["flex_vs_sdpa"][name] = check
        save()
    for tokens in token_sizes:
        trajectories = step_trajectories(tokens, side, seed=tokens)
        learner.cfg.micro_batch_tokens = tokens
        for tdam, attention, packing in configurations(tokens, device, args.backend):
            label = dict(model=name, tokens_target=tokens, tdam=tdam, attention=attention, packing=packing)
            tag = f"{name} {tokens:>6} tdam={tdam:d} {attention:5s} pack={packing:d}"
            if time.perf_counter() - START > args.budget_s:
                out["skipped"].append({**label, "why": "time budget"})
                continue
            if attention == "flex" and device.type != "cuda":
                out["skipped"].append({**label, "why": "torch's FlexAttention has no CPU backward"})
                continue
            say(f"{tag}: ...")
            try:
                result = {**label, **run_config(learner, trajectories, config, out["peak_tflops"] * 1e12, tdam,
                                                attention, packing, args.steps)}
            except Exception as error:  # noqa: BLE001 (out of memory, a compile error: recorded, go on)
                learner.optimizer.zero_grad(set_to_none=True)
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                result = {**label, "error": f"{type(error).__name__}: {str(error)[:300]}"}
            out["results"].append(result)
            save()
            if "error" in result:
                say(f"{tag}: {result['error']}")
                continue
            say(f"{tag}: {result['step_s']:6.2f} s/step {result['tokens_per_s']:8.0f} tok/s  MFU {result['mfu']:6.1%}  "
                f"peak {result['peak_mem_gib']:5.1f} GiB  padded {result['padded_tokens']}/{result['tokens']}  "
                f"(warm-up {result['warmup_s']:.1f} s)")
    del learner
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="results JSON path")
    parser.add_argument("--budget-s", type=float, default=500.0, help="start no new work after this many seconds")
    parser.add_argument("--models", default="3b,7b")
    parser.add_argument("--tokens", default=None, help="tokens per training step (default 8192,32768; --tiny 256,512)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per configuration (after a warm-up)")
    parser.add_argument("--layers-7b", type=int, default=None, help="decoder layers of the 7B (default: what fits)")
    parser.add_argument("--backend", default="fsdp2", choices=("fsdp2", "megatron"))
    parser.add_argument("--no-shard", action="store_true", help="no process group: the unsharded autocast path")
    parser.add_argument("--tiny", action="store_true", help="CPU, the tiny model, small steps (the test's mode)")
    args = parser.parse_args()
    import transformers

    transformers.logging.set_verbosity_error()  # random init lists every weight as missing
    device = torch.device("cuda") if torch.cuda.is_available() and not args.tiny else torch.device("cpu")
    env = {"device": device, "side": 8 if args.tiny else 16,  # patches per frame side: 16 or 64 tokens a patch
           "token_sizes": [int(t) for t in (args.tokens or ("256,512" if args.tiny else "8192,32768")).split(",")],
           "memory": torch.cuda.get_device_properties(0).total_memory if device.type == "cuda" else None}
    out = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
           "transformers": transformers.__version__, "backend": args.backend, "sharded": not args.no_shard,
           "date": time.strftime("%Y-%m-%d"), "models": {}, "results": [], "flex_vs_sdpa": {}, "skipped": []}
    peak_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    out["peak_tflops"] = matmul_peak(device, peak_dtype, 8192 if device.type == "cuda" else 512,
                                     50 if device.type == "cuda" else 5) / 1e12
    out["peak_dtype"] = str(peak_dtype).removeprefix("torch.")
    say(f"{out['device']}: measured {out['peak_dtype']} matmul peak {out['peak_tflops']:.1f} TFLOP/s")
    if not args.no_shard:
        init_one_rank(device)
    env["tokenizer"] = stand_in_tokenizer()

    def save():
        Path(args.out).write_text(json.dumps(out, indent=1))

    with tempfile.TemporaryDirectory(prefix="bench_learner_gpu_") as env["tmp"]:
        for name in ["tiny"] if args.tiny else args.models.split(","):
            if time.perf_counter() - START > args.budget_s - MODEL_START_S:
                out["skipped"].append({"model": name, "why": "time budget"})
                continue
            bench_model(name, args, env, out, save)
            save()
    save()
    say(f"done: {len(out['results'])} configurations, {len(out['skipped'])} skipped; results in {args.out}")


if __name__ == "__main__":
    main()
