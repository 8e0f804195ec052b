"""Recipe keys of the learner and of cold-start SFT (`learner:` and `sft:` in a recipe)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from vo3rl.config.rules import raise_first_broken

DTYPES = ("auto", "bf16", "fp32")
SAVE_DTYPES = ("auto", "bf16", "fp32")
BACKENDS = ("fsdp2", "megatron")  # the learner implementation
DIST_BACKENDS = ("auto", "gloo", "nccl")  # torch.distributed's
LOSS_ON = ("assistant", "all")
ATTENTIONS = ("auto", "sdpa", "flex")  # the text decoder's attention (vo3rl/train/attention.py)


@dataclass
class MegatronConfig:
    """Parallel degrees of the Megatron learner (`learner.backend: megatron`). The learner ranks
    (`learner.ranks`) form data-parallel replicas of tensor_parallel x pipeline_parallel x
    context_parallel ranks each: data parallel = ranks / (tp x pp x cp). Only tensor parallelism is
    implemented; pipeline and context degrees above 1 are refused."""

    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    context_parallel: int = 1

    def model_parallel_size(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel * self.context_parallel

    def problems(self, ranks: int) -> list[tuple[bool, str, object, str]]:
        """The rules (as `raise_first_broken` takes them) the degrees must keep with `ranks` learner ranks."""
        size = self.model_parallel_size()
        return [
            (self.tensor_parallel >= 1, "megatron.tensor_parallel", self.tensor_parallel, ">= 1"),
            (self.pipeline_parallel >= 1, "megatron.pipeline_parallel", self.pipeline_parallel, ">= 1"),
            (self.context_parallel >= 1, "megatron.context_parallel", self.context_parallel, ">= 1"),
            (self.pipeline_parallel == 1, "megatron.pipeline_parallel", self.pipeline_parallel,
             "1: pipeline parallelism is not supported by vo3rl's Megatron learner yet"),
            (self.context_parallel == 1, "megatron.context_parallel", self.context_parallel,
             "1: context parallelism is not supported by vo3rl's Megatron learner yet"),
            (ranks % max(1, size) == 0, "ranks", ranks,
             f"a multiple of tensor_parallel x pipeline_parallel x context_parallel = {size}"),
        ]


@dataclass
class LearnerConfig:
    """How the policy is trained, whatever the loss.

    `ranks`: FSDP2 data-parallel ranks (Ray actors; 1 runs in-process). `micro_batch_tokens`: the padded
    token budget of one forward/backward (rows × longest row). `dtype`: "auto" (bf16 on GPU, fp32 on CPU),
    "bf16" or "fp32". `tdam_ratio`: the fraction of steps trained under the TDAM mask (0 = never).
    `lm_head_chunk`: positions per LM-head chunk (bounds the [positions, vocab] logits in memory).
    `grad_clip` <= 0 turns clipping off. `backend`: the learner, "fsdp2" (HF model sharded by FSDP2) or
    "megatron" (megatron-core's GPT decoder, tensor parallel; `megatron.*` its degrees). `dist_backend`:
    torch.distributed's, "auto" (gloo on CPU, nccl on GPU), "gloo" or "nccl".
    `save_dtype`: the dtype of a checkpoint's HF weights (what `vllm serve` runs): "auto" (bf16 when
    `dtype` resolves to bf16, else the dtype the starting model's config.json states if float32 or
    bfloat16, else fp32), "bf16" or "fp32"; the fp32 master weights are kept for resuming either way.
    `keep_last`: after each checkpoint, keep only the newest N complete ones of the run (0 = keep all;
    never what `final` points at).
    `attention`: the text decoder's, "auto" (FlexAttention block masks on CUDA, SDPA boolean masks
    elsewhere), "sdpa" or "flex" (on CPU forward only: torch has no CPU backward for it). `packing`:
    steps without TDAM put several trajectories into one row of up to `micro_batch_tokens` tokens, each
    attending only within itself, instead of padding one per row.
    """

    ranks: int = 1
    micro_batch_tokens: int = 4096
    lr: float = 1e-5
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_ratio: float = 0.1
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    freeze_vision: bool = True
    vision_lr_scale: float = 1.0  # a trainable vision tower steps at lr x this
    grad_ckpt: bool = False
    tdam_ratio: float = 0.0
    dtype: str = "auto"
    lm_head_chunk: int = 2048
    backend: str = "fsdp2"
    dist_backend: str = "auto"
    megatron: MegatronConfig = field(default_factory=MegatronConfig)
    save_dtype: str = "auto"
    keep_last: int = 0
    seed: int = 0
    attention: str = "auto"
    packing: bool = False

    def __post_init__(self):
        if isinstance(self.megatron, dict):  # a config rebuilt from `asdict` (a Ray rank's arguments)
            self.megatron = MegatronConfig(**self.megatron)

    def validate(self) -> None:
        """Raise ValueError naming the first key whose value makes no sense, with the value and the rule."""
        if self.backend in DIST_BACKENDS:
            raise ValueError(f"learner.backend = {self.backend!r}: the torch.distributed backend moved to "
                             f"learner.dist_backend; learner.backend now picks the learner: {' or '.join(BACKENDS)}")
        checks = [
            (self.backend in BACKENDS, "backend", self.backend, f"one of {', '.join(BACKENDS)}"),
            (self.ranks >= 1, "ranks", self.ranks, ">= 1"),
            (self.micro_batch_tokens >= 1, "micro_batch_tokens", self.micro_batch_tokens, ">= 1"),
            (self.lr > 0, "lr", self.lr, "> 0"),
            (self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0"),
            (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", self.betas,
             "two values in [0, 1)"),
            (self.eps > 0, "eps", self.eps, "> 0"),
            (0.0 <= self.warmup_ratio <= 1.0, "warmup_ratio", self.warmup_ratio, "in [0, 1]"),
            (0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio", self.min_lr_ratio, "in [0, 1]"),
            (self.vision_lr_scale > 0, "vision_lr_scale", self.vision_lr_scale, "> 0"),
            (0.0 <= self.tdam_ratio <= 1.0, "tdam_ratio", self.tdam_ratio, "in [0, 1]"),
            (self.dtype in DTYPES, "dtype", self.dtype, f"one of {', '.join(DTYPES)}"),
            (self.lm_head_chunk >= 1, "lm_head_chunk", self.lm_head_chunk, ">= 1"),
            (self.dist_backend in DIST_BACKENDS, "dist_backend", self.dist_backend,
             f"one of {', '.join(DIST_BACKENDS)}"),
            (self.save_dtype in SAVE_DTYPES, "save_dtype", self.save_dtype, f"one of {', '.join(SAVE_DTYPES)}"),
            (self.keep_last >= 0, "keep_last", self.keep_last, ">= 0 (0: keep all)"),
            (self.attention in ATTENTIONS, "attention", self.attention, f"one of {', '.join(ATTENTIONS)}"),
        ]
        if self.backend == "megatron":
            checks += self.megatron.problems(self.ranks)
            checks.append((self.attention != "flex", "attention", self.attention,
                           "auto or sdpa with learner.backend megatron (its attention takes dense boolean masks)"))
        else:
            default = MegatronConfig()
            checks += [(getattr(self.megatron, name) == getattr(default, name), f"megatron.{name}",
                        getattr(self.megatron, name), f"{getattr(default, name)} (its default) unless learner.backend "
                        f"is megatron (it is {self.backend!r})") for name in vars(default)]
        raise_first_broken("learner", checks)


@dataclass
class SFTStage:
    """One SFT stage. Unset values (None) fall back to `learner:`. `train` is an SFT chat JSONL
    in `format` (chat: vo3rl.data.chat; seeker_sft; stgr_sft), video paths relative to `data.root`;
    `protocol` keeps only examples of that protocol ("" keeps all); `epochs` passes over it, or
    `max_steps` steps when set (> 0)."""

    name: str = "stage1"
    train: str = "${data.train}"
    format: str = "chat"
    protocol: str = ""
    epochs: float = 1.0
    max_steps: int = 0
    lr: Optional[float] = None
    warmup_ratio: Optional[float] = None
    tdam_ratio: Optional[float] = None


@dataclass
class SFTConfig:
    """Cold-start SFT. `batch_size`: trajectories per optimizer step (the global batch, split over
    ranks). `max_length`: longer trajectories are skipped (tokens). `loss_on`: "assistant" (Video-o3)
    or "all" (Open-o3 Video's code). `eval_fraction`: the share of each stage's train file held out
    for the eval loss (by a hash of the sample id). `gen_eval`: before and after training, the
    evaluation RL and `vo3rl eval` run (`vo3rl.evaluation.episodes`: greedy episodes on the rollout
    workers with `rollout.eval_max_turns` and `rollout.max_new_tokens`, scored by the recipe's reward)
    on `gen_eval_file`, read with `data.format`; `gen_eval_samples` caps it (`gen_eval_samples_before`
    the run before training). `resume`: a checkpoint directory, "auto" (latest in the run), or "".
    `prepare`: run the `data` and `tiny_model` stages first when their outputs are missing (tiny demo).
    """

    stages: list[SFTStage] = field(default_factory=lambda: [SFTStage()])
    batch_size: int = 16
    max_length: int = 4096
    loss_on: str = "assistant"
    eval_fraction: float = 0.05
    eval_every: int = 50
    eval_batches: int = 4
    save_every: int = 0
    log_every: int = 5
    resume: str = ""
    gen_eval: bool = True
    gen_eval_file: str = "${data.eval}"
    gen_eval_samples: int = 64
    gen_eval_samples_before: int = -1  # -1: as many as after; a random model's episodes run to every limit
    output_dir: str = "${run.output_dir}/sft"
    prepare: bool = False
    learner_gpus: float = 0.0  # GPUs each learner rank reserves (Ray ranks, `learner.ranks` > 1)

    def validate(self) -> None:
        """Raise ValueError naming the first key whose value makes no sense, with the value and the rule."""
        checks = [
            (self.loss_on in LOSS_ON, "loss_on", self.loss_on, f"one of {', '.join(LOSS_ON)}"),
            (bool(self.stages), "stages", self.stages, "at least one stage"),
            (self.batch_size >= 1, "batch_size", self.batch_size, ">= 1"),
            (self.max_length >= 1, "max_length", self.max_length, ">= 1"),
            (0.0 <= self.eval_fraction < 1.0, "eval_fraction", self.eval_fraction, "in [0, 1)"),
            (self.eval_every >= 0, "eval_every", self.eval_every, ">= 0 (0: never)"),
            (self.eval_batches >= 1, "eval_batches", self.eval_batches, ">= 1"),
            (self.save_every >= 0, "save_every", self.save_every, ">= 0 (0: only at the end)"),
            (self.log_every >= 1, "log_every", self.log_every, ">= 1"),
            (self.gen_eval_samples >= 0, "gen_eval_samples", self.gen_eval_samples, ">= 0"),
            (self.gen_eval_samples_before >= -1, "gen_eval_samples_before", self.gen_eval_samples_before,
             ">= -1 (-1: as many as after)"),
            (self.learner_gpus >= 0, "learner_gpus", self.learner_gpus, ">= 0"),
            (len({s.name for s in self.stages}) == len(self.stages), "stages", [s.name for s in self.stages],
             "stage names must differ"),
        ]
        for i, stage in enumerate(self.stages):
            key = f"stages.{i}"
            checks += [
                (stage.epochs > 0, f"{key}.epochs", stage.epochs, "> 0"),
                (stage.max_steps >= 0, f"{key}.max_steps", stage.max_steps, ">= 0 (0: use epochs)"),
                (stage.lr is None or stage.lr > 0, f"{key}.lr", stage.lr, "> 0 (or unset: learner.lr)"),
                (stage.warmup_ratio is None or 0 <= stage.warmup_ratio <= 1, f"{key}.warmup_ratio",
                 stage.warmup_ratio, "in [0, 1]"),
                (stage.tdam_ratio is None or 0 <= stage.tdam_ratio <= 1, f"{key}.tdam_ratio", stage.tdam_ratio,
                 "in [0, 1]"),
            ]
        raise_first_broken("sft", checks)
