"""`MegatronLearner`: the learner contract (`vo3rl.train.contract.PolicyLearner`) on megatron-core.

It is `vo3rl.train.learner.Learner` with the FSDP2 parts replaced: the model is `MegatronPolicy`
(megatron's GPT decoder, tensor parallel; HF's vision tower replicated), the forward is megatron's, the
gradients are averaged over data-parallel replicas by one all-reduce after the last micro-batch, and
the norm that clipping uses counts each split parameter's shards once. Batching (padded or packed
rows, the TDAM mask), losses, the schedule, the TDAM draw and the metrics are the base class's, so the
same batch gives the same loss and, up to float rounding, the same update as FSDP2 (the loss is
normalised by the global batch's trained tokens x the number of replicas, as there).

Ranks: `learner.ranks` = data-parallel replicas x `learner.megatron.tensor_parallel`; the ranks of one
replica get the same share of the batch (`vo3rl.workers.learner.LearnerGroup`). A one-rank learner in
process joins a process group of its own (megatron's layers need one) and leaves it on `shutdown`.

Checkpoints and exports are HF-named and unsharded (`weights.py`, `state.py`): the rollout engines,
`vo3rl.train.checkpoint` and transformers read them as they read FSDP2's.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from transformers import Qwen2_5_VLForConditionalGeneration

from vo3rl.config.learner import LearnerConfig
from vo3rl.train import checkpoint as ckpt
from vo3rl.train.batch import Batch
from vo3rl.train.forward import TokenScores
from vo3rl.train.learner import Learner, _rng_from_json, _rng_to_json
from vo3rl.train.megatron import parallel, state
from vo3rl.train.megatron.layout import degree_problem
from vo3rl.train.megatron.model import MegatronPolicy, build_language_model, score_targets
from vo3rl.train.megatron.weights import TextShape, hf_to_megatron, megatron_to_hf, shard


class MegatronLearner(Learner):
    """The policy of `model_path` (an HF Qwen2.5-VL directory) on megatron-core; see the module
    docstring. Raises ValueError when `learner.megatron.tensor_parallel` does not divide the model's
    attention or key/value heads."""

    def __init__(self, model_path: str | Path, cfg: LearnerConfig, total_steps: int = 1, tokenizer=None):
        cfg.validate()
        self._owns_group = parallel.join_single_process_group(cfg.dist_backend)
        self.layout = parallel.init_parallel_state(cfg.megatron.tensor_parallel, cfg.seed)
        super().__init__(model_path, cfg, total_steps, tokenizer)
        self.replicas = self.layout.dp_size

    # -- the FSDP2 parts, replaced ----------------------------------------------------------
    def _build_model(self) -> MegatronPolicy:
        hf = Qwen2_5_VLForConditionalGeneration.from_pretrained(self.model_path, dtype=torch.float32,
                                                               attn_implementation="sdpa")
        self.config, self.generation_config = hf.config, hf.generation_config
        self.attention = "sdpa"  # megatron runs the dense boolean masks (the learner's SDPA path)
        config = self.config.to_dict()
        problem = degree_problem(self.layout.tp, config.get("text_config") or config)
        if problem:
            raise ValueError(problem)
        self.shape = TextShape.from_config(config)
        language = build_language_model(config, self.layout.tp, self.cfg.grad_ckpt)
        policy = MegatronPolicy(language, hf.model.visual, int(self.config.video_token_id), self.shape.vocab)
        self._load_hf(policy, hf.state_dict())
        del hf
        if self.cfg.freeze_vision:
            for p in policy.visual.parameters():
                p.requires_grad_(False)
        return policy.to(self.device)

    def _load_hf(self, policy: MegatronPolicy, weights: dict) -> None:
        """Load full HF-named `weights` into this rank's shards of `policy`."""
        local = shard(hf_to_megatron(weights, self.shape, self.layout.tp), self.layout.tp, self.layout.tp_rank)
        missing, unexpected = policy.load_state_dict(local, strict=False)
        missing = [k for k in missing if not k.endswith("._extra_state")]
        if missing or unexpected:
            raise ValueError(f"Megatron state mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")

    def _vision_parameters(self):
        return self.model.visual.parameters()

    def _score(self, batch: Batch, with_entropy: bool) -> TokenScores:
        return score_targets(self.model, batch, with_entropy, self.cfg.lm_head_chunk)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _padding_call(self, backward: bool) -> None:
        """Nothing: replicas meet only in the one gradient all-reduce, however many micro-batches each ran."""

    def _clip_and_step(self) -> float:
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        for _, param in named:  # unused this step (no video): a zero gradient, as FSDP2's anchor gives
            if param.grad is None:
                param.grad = torch.zeros_like(param)
        parallel.sum_gradients_over_replicas([p for _, p in named])
        if self.replicas > 1:
            for _, param in named:
                param.grad.div_(self.replicas)
        norm = parallel.clip_gradients(named, self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf"))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return norm

    # -- weights and checkpoints --------------------------------------------------------------
    def _full_hf_weights(self) -> dict:
        """The full HF-named weights on CPU on the ranks of replica 0 (a collective over its tensor-
        parallel group), an empty dict on the others."""
        if self.layout.dp_rank != 0:
            return {}
        local = {k: v.detach() for k, v in self.model.state_dict().items() if not k.endswith("._extra_state")}
        return {k: v.cpu() for k, v in megatron_to_hf(parallel.gather_full_state(local), self.shape).items()}

    def export_weights(self) -> dict:
        """The full HF-named state dict on CPU on rank 0 (module key names of transformers' model,
        vocabulary padding removed); an empty dict on the other ranks. Collective."""
        weights = self._full_hf_weights()
        return weights if self.rank == 0 else {}

    def save_checkpoint(self, path: str | Path, with_optimizer: bool = True, extra: dict | None = None) -> str:
        """The FSDP2 learner's checkpoint files (`Learner.save_checkpoint`), written from the gathered
        HF-named weights and optimizer state by rank 0. Collective."""
        path = Path(path)
        weights = self._full_hf_weights()
        if self.rank == 0:
            ckpt.save_hf_checkpoint(self.model_class, self.config, weights, ckpt.hf_dir(path), self.model_path,
                                    self.save_dtype, self.generation_config)
        masters_in_state = with_optimizer and self.save_dtype != "float32"
        trainer_state = {"step": self.step, "world_size": self.world_size, **ckpt.fingerprint(self.config),
                         "weights_dtype": self.save_dtype, "master_weights": "state" if masters_in_state else "hf",
                         "optimizer": None, "extra": extra or {}, "backend": "megatron",
                         "tensor_parallel": self.layout.tp}
        if with_optimizer:
            masters = weights if masters_in_state and self.rank == 0 else None
            saved = state.save_optimizer(ckpt.optimizer_dir(path), self.model, self.optimizer, self.shape,
                                         self.layout, masters)
            trainer_state["optimizer"] = {**saved, "scheduler": self.scheduler.state_dict(),
                                          "rng": _rng_to_json(self._rng.getstate())}
        del weights
        if self.rank == 0:
            ckpt.write_trainer_state(path, trainer_state)
        dist.barrier()
        return str(path)

    def load_checkpoint(self, path: str | Path, with_optimizer: bool = True) -> dict:
        """Load what `save_checkpoint` wrote (the FSDP2 learner's layout: any tensor-parallel degree, or
        an FSDP2 checkpoint's weights); returns the saved extras with `step`. Raises CheckpointError."""
        meta = ckpt.validate_checkpoint(path, self.config)
        resume = meta.get("optimizer")
        if with_optimizer and not resume:
            raise ckpt.CheckpointError(f"checkpoint {path} was saved without optimizer state")
        masters_in_state = with_optimizer and meta.get("master_weights") == "state"
        if with_optimizer:
            masters = state.load_optimizer(ckpt.optimizer_dir(path), self.model, self.optimizer, self.shape,
                                           self.layout, resume, masters_in_state)
            self.scheduler.load_state_dict(resume["scheduler"])
            self._rng.setstate(_rng_from_json(resume["rng"]))
            self.step = int(meta["step"])
        if masters_in_state:
            self._load_hf(self.model, masters)
        else:
            source = Qwen2_5_VLForConditionalGeneration.from_pretrained(ckpt.hf_dir(path), dtype=torch.float32)
            self._load_hf(self.model, source.state_dict())
            del source
        return {"step": meta.get("step"), **meta.get("extra", {})}

    def shutdown(self) -> None:
        """Leave megatron's parallel state, and the process group when this learner made it."""
        parallel.destroy_parallel_state()
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_group = False
