"""Recipe keys of the learner and of cold-start SFT (`learner:` and `sft:` in a recipe)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class LearnerConfig:
    """How the policy is trained, whatever the loss.

    `ranks`: FSDP2 data-parallel ranks (Ray actors; 1 runs in-process). `micro_batch_tokens`: the padded
    token budget of one forward/backward (rows × longest row). `dtype`: "auto" (bf16 on GPU, fp32 on CPU),
    "bf16" or "fp32". `tdam_ratio`: the fraction of steps trained under the TDAM mask (0 = never).
    `lm_head_chunk`: positions per LM-head chunk (bounds the [positions, vocab] logits in memory).
    `grad_clip` <= 0 turns clipping off. `backend`: "auto" (gloo on CPU, nccl on GPU), "gloo" or "nccl".
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
    backend: str = "auto"
    seed: int = 0

    def validate(self) -> None:
        if self.ranks < 1:
            raise ValueError(f"learner.ranks must be >= 1, got {self.ranks}")
        if self.vision_lr_scale <= 0:
            raise ValueError(f"learner.vision_lr_scale must be > 0, got {self.vision_lr_scale}")
        if self.micro_batch_tokens < 1:
            raise ValueError("learner.micro_batch_tokens must be >= 1")
        if not 0.0 <= self.tdam_ratio <= 1.0:
            raise ValueError(f"learner.tdam_ratio must be in [0, 1], got {self.tdam_ratio}")
        if not 0.0 <= self.warmup_ratio <= 1.0:
            raise ValueError(f"learner.warmup_ratio must be in [0, 1], got {self.warmup_ratio}")
        if self.dtype not in ("auto", "bf16", "fp32"):
            raise ValueError(f"learner.dtype {self.dtype!r} is not one of auto, bf16, fp32")
        if self.backend not in ("auto", "gloo", "nccl"):
            raise ValueError(f"learner.backend {self.backend!r} is not one of auto, gloo, nccl")


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
    for the eval loss (by a hash of the sample id). `gen_eval`: greedy multi-turn generation on
    `gen_eval_file` (rows with the rewards' ground truth) before and after, scored with rewards/;
    `gen_eval_samples` caps it (`gen_eval_samples_before` the run before training). `resume`: a checkpoint directory, "auto" (latest in the run), or "".
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
    gen_max_turns: int = 8
    gen_max_new_tokens: int = 256
    output_dir: str = "${run.output_dir}/sft"
    prepare: bool = False

    def validate(self) -> None:
        if self.loss_on not in ("assistant", "all"):
            raise ValueError(f"sft.loss_on {self.loss_on!r} is not one of assistant, all")
        if not self.stages:
            raise ValueError("sft.stages is empty")
        if self.batch_size < 1 or self.max_length < 1:
            raise ValueError("sft.batch_size and sft.max_length must be >= 1")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError("sft.eval_fraction must be in [0, 1)")
