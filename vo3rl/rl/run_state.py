"""Everything an RL run holds between steps: its workers, data, metrics sink and step counter, and how
it is saved and resumed (atomically: a checkpoint is written under a temporary name, then renamed)."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vo3rl.log import get_logger

log = get_logger(__name__)


@dataclass
class RunState:
    recipe: object
    cfg: object
    out: Path
    samples: list
    by_id: dict
    learner: object
    rollout: object
    rewards: object
    metrics: object
    reference: object = None
    eval_samples: list = field(default_factory=list)
    step: int = 0
    seed: int = 0
    skips: dict = field(default_factory=dict)

    @classmethod
    def open(cls, recipe) -> "RunState":
        """Start Ray and the workers, read the prompts, and resume from the newest complete checkpoint."""
        from vo3rl.data.readers import read_samples
        from vo3rl.data.skips import SkipLog
        from vo3rl.metrics import MetricsLog, open_wandb
        from vo3rl.ray_setup import start_ray
        from vo3rl.train.checkpoint import latest_checkpoint
        from vo3rl.workers.learner import LearnerGroup
        from vo3rl.workers.reward import RewardPool
        from vo3rl.workers.rollout import RolloutGroup

        cfg = recipe.rl
        out = Path(recipe.run.output_dir) / "rl"
        checkpoints = out / "checkpoints"
        for stale in checkpoints.glob("*.tmp"):  # a write killed half-way; the previous one stands
            shutil.rmtree(stale, ignore_errors=True)
        skips = SkipLog("rl prompts")
        samples = list(read_samples(recipe.data.train, recipe.data.format, data_root=recipe.data.root or None, skips=skips))
        if not samples:
            raise ValueError(f"no usable RL samples in {recipe.data.train} ({skips.summary()})")
        eval_samples = []
        if cfg.eval_samples and recipe.data.eval:
            eval_skips = SkipLog("rl eval")
            eval_samples = list(read_samples(recipe.data.eval, recipe.data.format, data_root=recipe.data.root or None,
                                             skips=eval_skips))[: cfg.eval_samples]
        resume = latest_checkpoint(checkpoints) if cfg.resume else None
        policy = str(resume or cfg.init_from or recipe.model.path)
        log.info("RL policy from %s (%d samples)", policy, len(samples))
        start_ray(recipe.ray)
        # The rollout workers reserve their CPUs first; the learner ranks share what is left (at least 1).
        ranks = recipe.learner.ranks
        rollout_cpus = cfg.rollout_workers * recipe.rollout.worker_cpus
        cpus = max(1, int(((recipe.ray.num_cpus or ranks + rollout_cpus) - rollout_cpus) // max(1, ranks)))
        learner = LearnerGroup(policy, recipe.learner, total_steps=max(1, cfg.steps * cfg.updates_per_batch),
                               cpus_per_rank=cpus, gpus_per_rank=cfg.learner_gpus)
        if cfg.lr is not None or cfg.warmup_ratio is not None:
            learner.reset_schedule(max(1, cfg.steps * cfg.updates_per_batch), cfg.lr, cfg.warmup_ratio)
        reference = None
        if cfg.loss.kl_coef:
            reference = LearnerGroup(cfg.init_from or recipe.model.path, recipe.learner, 1, cpus_per_rank=cpus,
                                     gpus_per_rank=cfg.learner_gpus)
        state = cls(recipe=recipe, cfg=cfg, out=out, samples=samples, by_id={s.id: s for s in samples},
                    learner=learner, rollout=RolloutGroup(policy, recipe, cfg.rollout_workers),
                    rewards=RewardPool(recipe.reward, cfg.reward_workers, cfg.judge_concurrency, recipe.run.log_level),
                    metrics=MetricsLog(out / "metrics.jsonl", open_wandb(recipe, out, job_type="rl")),
                    reference=reference, eval_samples=eval_samples, seed=recipe.run.seed,
                    skips={"prompts": skips.total})
        if resume is not None:
            saved = learner.load_checkpoint(str(resume), True)
            state.step = int(json.loads((resume / "driver_state.json").read_text())["step"])
            log.info("resumed at step %d from %s (learner step %s)", state.step, resume, saved.get("step"))
        return state

    def set_behaviour_logprobs(self, trajectories: list) -> None:
        """Fill `old_logprobs` (the learner's, or the rollout's) and, with KL, `ref_logprobs`. On-policy
        the update uses its own; the update reports the entropy and the rollout-vs-learner gap in
        every mode."""
        mode = self.cfg.old_logprobs
        if mode == "learner" or (mode == "rollout" and any(t.logprobs is None for t in trajectories)):
            # Only the trained (assistant) tokens, and with the update's attention mask (TDAM or not),
            # so the first update's ratio is exactly 1.
            logprobs, _ = self.learner.logprobs(trajectories, with_entropy=False, loss_on="assistant",
                                                use_tdam=self.cfg.use_tdam)
            for trajectory, lp in zip(trajectories, logprobs):
                use_rollout = mode == "rollout" and trajectory.logprobs is not None
                trajectory.old_logprobs = trajectory.logprobs if use_rollout else lp
        elif mode == "rollout":
            for trajectory in trajectories:
                trajectory.old_logprobs = trajectory.logprobs
        self._set_reference_logprobs(trajectories)

    def _set_reference_logprobs(self, trajectories: list) -> None:
        if self.reference is not None:
            ref, _ = self.reference.logprobs(trajectories, with_entropy=False, loss_on="assistant",
                                             use_tdam=self.cfg.use_tdam)
            for trajectory, lp in zip(trajectories, ref):
                trajectory.ref_logprobs = lp

    def loss_extras(self, trajectories: list) -> dict:
        from vo3rl.train.batch import n_trained_tokens

        tokens = n_trained_tokens(trajectories, "assistant")
        sequences = sum(1 for t in trajectories if t.loss_mask().any())
        return {"loss": asdict(self.cfg.loss), "counts": {"tokens": tokens, "sequences": sequences},
                "global_tokens": tokens, "on_policy": self.cfg.old_logprobs == "on_policy", "with_entropy": True}

    def maybe_log_trajectories(self, step: int, trajectories: list, results: list) -> None:
        every = self.cfg.log_trajectories_every
        if every and (step + 1) % every == 0 and trajectories:
            from vo3rl.metrics import trajectory_table

            self.metrics.table("trajectories", trajectory_table(trajectories[:8], results[:8]), step=step + 1)

    def evaluate(self) -> dict:
        """Greedy episodes on the eval split; each one is kept in `eval/step_<n>.jsonl`."""
        from vo3rl.evaluation import evaluate

        return evaluate(self.rollout, self.rewards, self.eval_samples,
                        self.out / "eval" / f"step_{self.step:06d}.jsonl")

    def close(self) -> None:
        self.metrics.close()


def save_step(state: RunState) -> Path:
    """Checkpoint the policy, optimizer and driver state as `step_<n>`, atomically."""
    root = state.out / "checkpoints"
    final = root / f"step_{state.step:06d}"
    temporary = root / f"step_{state.step:06d}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    state.learner.save_checkpoint(str(temporary), True, {"rl_step": state.step})
    (temporary / "driver_state.json").write_text(json.dumps({"step": state.step, "seed": state.seed}) + "\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(temporary, final)  # the rename is the commit point
    log.info("checkpoint %s", final)
    return final
