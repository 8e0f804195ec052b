"""The recipe's `rollout:` section: the vLLM engine, sampling, and the episode limits for train and eval."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from vo3rl.config.names import PROTOCOLS

# How a generate call's trajectories are spread over several engines (`vo3rl.rollout.routing`).
ROUTINGS = ("sticky", "round_robin")


@dataclass
class RolloutConfig:
    """Plain fields so a recipe can set each one.

    Engine (vLLM `EngineArgs`): `max_model_len` tokens; `kv_cache_gib` GiB of KV cache (None: vLLM's
    own sizing, `gpu_memory_utilization` on GPUs; on CPU the env `VLLM_CPU_KVCACHE_SPACE` wins);
    `dtype` ("float32" for the tiny model so rollout and learner log-probs agree); `in_process` runs
    the engine core inside the worker's process (one process, fastest start on CPU; on GPUs set it
    False so the engine core overlaps the episode loop's Python work). `torch_threads`: CPU threads of
    the engine's kernels (None: the environment's; Ray gives an actor OMP_NUM_THREADS = its CPUs). More
    threads than free cores make them wait on each other: on the shared 2-core box the same replay took
    2.8 s or 21 s with 2 threads, 2.8-3.9 s with 1 (benchmarks/bench_rollout.py). `profile_video` describes the
    largest video a prompt may hold ({num_frames, width, height} in frames and pixels) so vLLM profiles
    and warms up with it instead of its own worst case.

    Sampling: `temperature`, `top_p`, `top_k` (0 = off) for training; evaluation is greedy. `seed`
    makes every request's sampling reproducible (None: unseeded). Log-probs are the raw model's
    (`logprobs_mode`), i.e. what the learner computes, whatever the temperature.

    Episodes: `protocol` video_o3 (multi-turn crop tool) or open_o3 (one grounded turn);
    `max_turns` / `eval_max_turns` assistant turns (the last one is told to answer);
    `max_new_tokens` per turn; `max_videos` per context; `max_context` tokens with `reserve_tokens`
    kept free. `tool_threads` threads run crops and prompt building while the engine steps (0: inline).
    `native_context` False re-encodes every turn's whole context (no prefix cache, videos processed
    again): the decoupled way, for the benchmark only.

    `interrupted_turns`: what happens to a turn that a weight update interrupts mid-decoding
    (asynchronous RL only; otherwise updates come between rollouts): "resume" keeps the tokens
    sampled so far, with the log-probs and version of the weights that sampled them, and decodes the
    rest under the new weights; "discard" drops them and samples the whole turn again.

    Placement: each rollout worker (Ray actor) reserves `worker_cpus` CPUs and `worker_gpus` GPUs
    (give it `tensor_parallel_size` GPUs on a cluster).

    Several engines (`rl.rollout_workers` > 1; one worker always gets the whole call): a generate call
    is cut into `units_per_worker` work units per engine, dealt to whichever engine is free next, but
    into fewer when a unit would hold fewer than `min_unit_trajectories` trajectories (never fewer than
    one per engine): a unit is an in-engine batch, and small batches waste decode steps.
    `routing` "sticky" keeps all members of a sample's group in one unit (they share the prompt prefix,
    so it is computed once); "round_robin" sends member m of sample i to engine (i + m) mod n, to
    measure what stickiness buys. The same trajectories (seeds) either way.
    """

    max_model_len: int = 32768
    kv_cache_gib: Optional[float] = None
    tensor_parallel_size: int = 1
    enable_prefix_caching: bool = True
    gpu_memory_utilization: float = 0.85
    dtype: str = "auto"
    enforce_eager: bool = True
    max_num_seqs: int = 256
    max_num_batched_tokens: Optional[int] = None
    in_process: bool = True
    torch_threads: Optional[int] = None
    distributed_executor_backend: Optional[str] = None
    mm_processor_cache_gb: float = 1.0
    profile_video: dict[str, int] = field(default_factory=dict)
    skip_mm_profiling: bool = False
    logprobs_mode: str = "raw_logprobs"

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: Optional[int] = 0

    protocol: str = "video_o3"
    max_turns: int = 6
    eval_max_turns: int = 8
    max_new_tokens: int = 1024
    max_videos: int = 12
    max_context: int = 32768
    reserve_tokens: int = 2000
    tool_threads: int = 2
    native_context: bool = True
    interrupted_turns: str = "resume"

    worker_cpus: float = 1.0
    worker_gpus: float = 0.0
    routing: str = "sticky"
    units_per_worker: int = 4
    min_unit_trajectories: int = 32

    def validate(self) -> None:
        checks = [
            (self.protocol in PROTOCOLS, f"protocol must be one of {PROTOCOLS}"),
            (self.max_turns >= 1 and self.eval_max_turns >= 1, "max_turns and eval_max_turns must be >= 1"),
            (self.max_new_tokens >= 1 and self.max_videos >= 1, "max_new_tokens and max_videos must be >= 1"),
            (0 <= self.reserve_tokens < self.max_context, "need 0 <= reserve_tokens < max_context"),
            (self.max_context <= self.max_model_len,
             f"max_context ({self.max_context}) must not exceed the engine's max_model_len ({self.max_model_len})"),
            (self.temperature >= 0 and 0 < self.top_p <= 1 and self.top_k >= 0, "temperature >= 0, 0 < top_p <= 1, top_k >= 0"),
            (self.tensor_parallel_size >= 1 and self.max_num_seqs >= 1, "tensor_parallel_size, max_num_seqs >= 1"),
            (self.tool_threads >= 0, "tool_threads must be >= 0"),
            (self.interrupted_turns in ("resume", "discard"), "interrupted_turns must be resume or discard"),
            (self.torch_threads is None or self.torch_threads >= 1, "torch_threads must be >= 1"),
            (self.worker_cpus >= 0 and self.worker_gpus >= 0, "worker_cpus and worker_gpus must be >= 0"),
            (self.routing in ROUTINGS, f"routing must be one of {ROUTINGS}, got {self.routing!r}"),
            (self.units_per_worker >= 1 and self.min_unit_trajectories >= 1,
             "units_per_worker and min_unit_trajectories must be >= 1"),
            (set(self.profile_video) <= {"num_frames", "width", "height"},
             "profile_video keys are num_frames, width, height"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"rollout: {message}")

    def engine_args(self, model_path: str) -> dict[str, Any]:
        """Keyword arguments of vLLM's `EngineArgs` for `model_path` (an HF directory)."""
        video: dict[str, int] = {"count": self.max_videos, **self.profile_video}
        if self.protocol == "open_o3":
            video["count"] = 1
        args: dict[str, Any] = dict(
            model=str(model_path), dtype=self.dtype, seed=self.seed if self.seed is not None else 0,
            max_model_len=self.max_model_len, enforce_eager=self.enforce_eager,
            enable_prefix_caching=self.enable_prefix_caching, tensor_parallel_size=self.tensor_parallel_size,
            gpu_memory_utilization=self.gpu_memory_utilization, max_num_seqs=self.max_num_seqs,
            limit_mm_per_prompt={"video": video, "image": 0}, mm_processor_cache_gb=self.mm_processor_cache_gb,
            skip_mm_profiling=self.skip_mm_profiling, logprobs_mode=self.logprobs_mode, disable_log_stats=True,
        )
        if self.kv_cache_gib is not None:
            args["kv_cache_memory_bytes"] = int(self.kv_cache_gib * (1 << 30))
        if self.max_num_batched_tokens is not None:
            args["max_num_batched_tokens"] = self.max_num_batched_tokens
        if self.distributed_executor_backend is not None:
            args["distributed_executor_backend"] = self.distributed_executor_backend
        return args
