"""The learner of one rank: the policy (FSDP2-sharded when a process group exists), its optimizer and
schedule, and the operations of the learner contract (`vo3rl.train.contract.PolicyLearner`). Pure torch;
`workers/learner.py` hosts one per Ray actor, and a single-rank run uses it directly, in process.

Every rank gets its own share of the global batch. A train step divides each loss sum by the token count
of the GLOBAL batch and multiplies by the number of data-parallel replicas (FSDP averages gradients over
ranks), so one rank or two, one micro-batch or eight, give the same gradient.

Another backend (`vo3rl.train.megatron.learner.MegatronLearner`) subclasses `Learner` and replaces its
FSDP2-specific parts: `_build_model` (and `_vision_parameters`), `_score`, `_autocast`, `_padding_call`,
`_clip_and_step`, the weights and checkpoint methods; batching, losses, schedule and TDAM draws stay here.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from transformers import AutoConfig, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

from vo3rl.config.learner import LearnerConfig
from vo3rl.log import get_logger
from vo3rl.model.tiny import build_processor
from vo3rl.model.tokenizer import build_tokenizer
from vo3rl.model.video_inputs import VideoMaterialiser
from vo3rl.train import checkpoint as ckpt
from vo3rl.train import checkpoint_state
from vo3rl.train import fsdp
from vo3rl.train.attention import install_attention
from vo3rl.train.batch import Batch, build_batch, n_trained_tokens
from vo3rl.train.forward import TokenScores, install_scoring, score_targets
from vo3rl.train.losses import LossInputs, get_loss, split_loss_output
from vo3rl.train.packing import plan_micro_batches
from vo3rl.train.schedule import make_scheduler

log = get_logger(__name__)


def _device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def _rng_to_json(state: tuple) -> list:
    """`random.Random.getstate()` as JSON: [version, [625 ints], gauss_next]."""
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_from_json(state: list) -> tuple:
    version, internal, gauss = state
    return version, tuple(internal), gauss


def _source_config(model_path: Path) -> dict:
    """The model directory's config.json as written (its dtype fields are not the loaded model's)."""
    return json.loads((model_path / "config.json").read_text())


def _load_tokenizer(model_path: Path, build):
    """The tokenizer saved with the model (fast to load), else the one built from the BPE ranks."""
    if (model_path / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(model_path)
    return build()


class Learner:
    """Holds the policy of `model_path` (an HF Qwen2.5-VL directory). `total_steps` sizes the schedule.
    Implements `PolicyLearner`; `train_step` also takes the global batch's token count when this
    learner is one rank of several."""

    def __init__(self, model_path: str | Path, cfg: LearnerConfig, total_steps: int = 1, tokenizer=None):
        cfg.validate()
        self.cfg = cfg
        self.model_path = Path(model_path)
        self.rank, self.world_size = fsdp.world()
        self.replicas = self.world_size  # data-parallel replicas the gradients are averaged over
        self.device = _device()
        self.bf16 = cfg.dtype == "bf16" or (cfg.dtype == "auto" and self.device.type == "cuda")
        self.save_dtype = ckpt.resolve_save_dtype(cfg.save_dtype, self.bf16, _source_config(self.model_path))
        torch.manual_seed(cfg.seed)
        self._rng = random.Random(cfg.seed)
        self.model_class = Qwen2_5_VLForConditionalGeneration
        self.model = model = self._build_model()  # sets self.config, generation_config, attention
        vision = {id(p) for p in self._vision_parameters()}
        groups = [{"params": [p for p in model.parameters() if p.requires_grad and id(p) not in vision], "lr_scale": 1.0},
                  {"params": [p for p in model.parameters() if p.requires_grad and id(p) in vision], "lr_scale": cfg.vision_lr_scale}]
        groups = [dict(g, lr=cfg.lr * g["lr_scale"]) for g in groups if g["params"]]
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, total_steps, cfg.warmup_ratio, cfg.min_lr_ratio)
        self.tokenizer = tokenizer or _load_tokenizer(self.model_path, build_tokenizer)
        self.pad_id = self.tokenizer.pad_token_id
        self.videos = VideoMaterialiser(build_processor(self.tokenizer).video_processor)
        self.tokens_per_second = float(self.config.vision_config.tokens_per_second)
        self.step = 0

    def _build_model(self):
        """The policy on `self.device`, FSDP2-sharded when a process group exists; sets `self.config`
        (the HF config), `self.generation_config` and `self.attention` ("sdpa" or "flex")."""
        config = AutoConfig.from_pretrained(self.model_path)
        config._attn_implementation = "sdpa"
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            self.model_path, config=config, dtype=torch.float32, attn_implementation="sdpa")
        self.config = model.config
        self.generation_config = model.generation_config
        if self.cfg.freeze_vision:
            for p in model.model.visual.parameters():
                p.requires_grad_(False)
        if self.cfg.grad_ckpt:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.to(self.device)
        if fsdp.is_sharded():
            fsdp.shard_policy(model, self.device.type, self.bf16)
        install_scoring(model)
        self.attention = install_attention(model, self.cfg.attention, self.device)  # "sdpa" or "flex"
        return model

    def _vision_parameters(self):
        """The vision tower's parameters (their own optimizer group, at lr x `vision_lr_scale`)."""
        return self.model.model.visual.parameters()

    def _score(self, batch: Batch, with_entropy: bool) -> TokenScores:
        """The policy's `TokenScores` of one micro-batch (already on the device)."""
        return score_targets(self.model, batch, with_entropy, self.cfg.lm_head_chunk)

    # -- schedule -----------------------------------------------------------------------------
    def reset_schedule(self, total_steps: int, lr: float | None = None, warmup_ratio: float | None = None) -> None:
        """Start a new cosine schedule (a new SFT stage): peak `lr`, `total_steps` optimizer steps."""
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] = (lr if lr is not None else self.cfg.lr) * group["lr_scale"]
        ratio = self.cfg.warmup_ratio if warmup_ratio is None else warmup_ratio
        self.scheduler = make_scheduler(self.optimizer, total_steps, ratio, self.cfg.min_lr_ratio)

    def use_tdam(self, ratio: float | None = None) -> bool:
        """Draw whether this step trains under TDAM (same seed on every rank -> same decision)."""
        ratio = self.cfg.tdam_ratio if ratio is None else ratio
        return ratio > 0 and self._rng.random() < ratio

    # -- forward ------------------------------------------------------------------------------
    def _micro_batches(self, trajectories, use_tdam: bool) -> list[list[int]]:
        """Packed rows with `learner.packing` on a step without TDAM, else padded rows."""
        return plan_micro_batches([len(t) for t in trajectories], self.cfg.micro_batch_tokens,
                                  pack=self.cfg.packing and not use_tdam)

    def _batches(self, trajectories, loss_on: str, use_tdam: bool):
        groups = self._micro_batches(trajectories, use_tdam)
        for group in groups:
            chosen = [trajectories[i] for i in group]
            videos, _ = self.videos.inputs(chosen)
            batch = build_batch(chosen, videos, self.pad_id, self.tokens_per_second, loss_on, use_tdam,
                                pack=self.cfg.packing and not use_tdam, dense=self.attention == "sdpa")
            yield group, chosen, batch.to(self.device)

    def _autocast(self):
        if self.bf16 and not fsdp.is_sharded():
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return torch.autocast(self.device.type, enabled=False)

    @torch.no_grad()
    def logprobs(self, trajectories, with_entropy: bool = True, loss_on: str = "all", use_tdam: bool = False):
        """Per trajectory, float32 numpy [N] log-probs of each token given the ones before (NaN at
        positions not scored: the first token, and with loss_on="assistant" every non-assistant token),
        and the entropies likewise (or None)."""
        self.model.eval()
        out_lp = [np.full(len(t), np.nan, dtype=np.float32) for t in trajectories]
        out_ent = [np.full(len(t), np.nan, dtype=np.float32) for t in trajectories] if with_entropy else None
        n_micro = len(self._micro_batches(trajectories, use_tdam))
        for _ in range(fsdp.max_over_ranks(n_micro) - n_micro):
            self._padding_call(backward=False)
        for group, _, batch in self._batches(trajectories, loss_on, use_tdam):
            with self._autocast():
                scores = self._score(batch, with_entropy)
            rows, positions = scores.rows.cpu().numpy(), scores.positions.cpu().numpy() + 1
            lp = scores.logprobs.float().cpu().numpy()
            ent = scores.entropy.float().cpu().numpy() if with_entropy else None
            for local, index in enumerate(group):
                here = rows == local
                out_lp[index][positions[here]] = lp[here]
                if with_entropy:
                    out_ent[index][positions[here]] = ent[here]
        return out_lp, out_ent

    # -- training -----------------------------------------------------------------------------
    def train_step(self, trajectories, loss: str = "sft", loss_on: str = "assistant", use_tdam: bool = False,
                   inputs: LossInputs | None = None, *, global_tokens: int | None = None) -> dict:
        """Forward/backward over this rank's `trajectories` in micro-batches, then clip and step (see
        `PolicyLearner.train_step`). Each micro-batch's loss gets `inputs.select(its indices)`; with
        `inputs.with_entropy` it also gets the entropy of each scored token.

        `global_tokens`: trained tokens of the whole global batch, all ranks together (None: this call's
        own, i.e. this learner is the only rank). Returns metrics; `loss` is this rank's share of the
        global mean (sum over ranks = the global mean loss), `trained_tokens` is `global_tokens`."""
        loss_fn = get_loss(loss)
        if global_tokens is None:
            global_tokens = n_trained_tokens(trajectories, loss_on)
        with_entropy = inputs is not None and bool(inputs.with_entropy)
        self.model.train()
        start = time.perf_counter()
        scale = self.replicas / max(1, global_tokens)
        total, tokens, padded, sums = 0.0, 0, 0, {}
        n_micro = len(self._micro_batches(trajectories, use_tdam))
        n_calls = fsdp.max_over_ranks(n_micro)
        for index in range(n_calls - n_micro):  # this rank has fewer micro-batches than another
            self._gradient_sync(n_micro == 0 and index == n_calls - 1)
            self._padding_call(backward=True)
        for index, (group, chosen, batch) in enumerate(self._batches(trajectories, loss_on, use_tdam)):
            # Reduce gradients across ranks once, on the last micro-batch.
            self._gradient_sync(index == n_micro - 1)
            chosen_inputs = inputs.select(group) if inputs is not None else None
            with self._autocast():
                scores = self._score(batch, with_entropy)
                value, loss_metrics = split_loss_output(loss_fn(scores, batch, chosen, chosen_inputs))
            (value * scale).backward()
            for key, amount in loss_metrics.items():
                sums[f"sum/{key}"] = sums.get(f"sum/{key}", 0.0) + float(amount)
            total += float(value.detach()) / max(1, global_tokens)
            tokens += sum(batch.lengths)
            padded += batch.input_ids.numel()
        metrics = {"loss": total, "tokens": tokens, "padded_tokens": padded, "tdam": float(use_tdam),
                   "lr": self.optimizer.param_groups[0]["lr"], **sums}
        metrics["grad_norm"] = self._clip_and_step()
        metrics["seconds"] = time.perf_counter() - start
        metrics["trained_tokens"] = global_tokens
        return metrics

    def _gradient_sync(self, enabled: bool) -> None:
        if hasattr(self.model, "set_requires_gradient_sync"):
            self.model.set_requires_gradient_sync(enabled)

    def _padding_call(self, backward: bool) -> None:
        """A zero-loss forward (and backward) on two padding tokens, so a rank with fewer micro-batches
        than another still takes part in every FSDP gather and reduce."""
        ids = torch.full((1, 2), self.pad_id, dtype=torch.long)
        batch = Batch(ids, torch.ones_like(ids), torch.arange(2).view(1, 1, 2).expand(3, 1, 2).contiguous(),
                      ids.clone(), torch.zeros_like(ids, dtype=torch.bool), [2], None)
        with self._autocast():
            scores = self._score(batch.to(self.device), False)
        if backward:
            scores.logprobs.sum().backward()

    def _clip_and_step(self) -> float:
        params = [p for p in self.model.parameters() if p.requires_grad]
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return float(norm)

    # -- weights and checkpoints --------------------------------------------------------------
    def export_weights(self) -> dict:
        """The full state dict on CPU (module key names), for the rollout engines. Collective: every
        rank must call it; only rank 0 gets the tensors, the others an empty dict (nothing to ship)."""
        weights = fsdp.full_state_dict(self.model)
        return weights if self.rank == 0 else {}

    def save_checkpoint(self, path: str | Path, with_optimizer: bool = True, extra: dict | None = None) -> str:
        """The files of a checkpoint at `path` (layout: `vo3rl.train.checkpoint`): the HF directory in
        the save dtype (rank 0), then with `with_optimizer` every rank's optimizer shards (DCP), and the
        trainer state (JSON); returns `path`. No completion marker: `write_checkpoint` calls this under
        a temporary name and commits the result. Collective."""
        path = Path(path)
        weights = fsdp.full_state_dict(self.model)
        if self.rank == 0:
            ckpt.save_hf_checkpoint(self.model_class, self.config, weights, ckpt.hf_dir(path), self.model_path,
                                    self.save_dtype, self.generation_config)
        del weights
        # The fp32 master weights are stored once: hf/ holds them when it is fp32, else state/ does.
        masters_in_state = with_optimizer and self.save_dtype != "float32"
        trainer_state = {"step": self.step, "world_size": self.world_size, **ckpt.fingerprint(self.config),
                         "weights_dtype": self.save_dtype, "master_weights": "state" if masters_in_state else "hf",
                         "optimizer": None, "extra": extra or {}}
        if with_optimizer:
            saved = checkpoint_state.save_optimizer_state(ckpt.optimizer_dir(path), self.model,
                                                          self.optimizer, with_model=masters_in_state)
            trainer_state["optimizer"] = {**saved, "scheduler": self.scheduler.state_dict(),
                                          "rng": _rng_to_json(self._rng.getstate())}
        if self.rank == 0:
            ckpt.write_trainer_state(path, trainer_state)
        if fsdp.is_sharded():
            dist.barrier()
        return str(path)

    def load_checkpoint(self, path: str | Path, with_optimizer: bool = True) -> dict:
        """Load weights (and optimizer state, schedule, step and TDAM RNG) saved by `save_checkpoint`,
        by any number of ranks; returns the saved extras with `step`. Raises CheckpointError on an
        incomplete directory, another model's checkpoint, or optimizer state that does not fit."""
        meta = ckpt.validate_checkpoint(path, self.config)
        resume = meta.get("optimizer")
        if with_optimizer and not resume:
            raise ckpt.CheckpointError(f"checkpoint {path} was saved without optimizer state")
        masters_in_state = with_optimizer and meta.get("master_weights") == "state"
        if not masters_in_state:
            source = Qwen2_5_VLForConditionalGeneration.from_pretrained(ckpt.hf_dir(path), dtype=torch.float32)
            fsdp.load_full_state_dict(self.model, source.state_dict())
            del source
        if with_optimizer:
            checkpoint_state.load_optimizer_state(ckpt.optimizer_dir(path), self.model, self.optimizer,
                                                  resume, with_model=masters_in_state)
            self.scheduler.load_state_dict(resume["scheduler"])
            self._rng.setstate(_rng_from_json(resume["rng"]))
            self.step = int(meta["step"])
        return {"step": meta.get("step"), **meta.get("extra", {})}

    def shutdown(self) -> None:
        """Nothing to release in process: the process group, when there is one, belongs to whoever
        joined it (the Ray actor), and the model goes with this object."""
