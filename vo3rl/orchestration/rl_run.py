"""`vo3rl rl RECIPE`: the RL stage's run around the step (`vo3rl.rl.step.rl_step`).

`open_rl_run` starts Ray, reads the prompts, places the workers (rollout engines, reward pool, learner
ranks and, with KL, a frozen reference; with `placement.layout: colocated` rank i and engine i share
bundle i and the engines sleep during the update) and resumes from the newest complete checkpoint; `train` loops
the steps of `rl.mode` (`vo3rl.rl.overlap.step_runner`: sync, one_step_off or async), evaluates
before, every `eval_every` steps and after (the overlapped rollout paused meanwhile), and checkpoints
through the one writer (`vo3rl.train.checkpoint.write_checkpoint`). A lost learner rank or node
ends the attempt; `train` then releases its actors and opens the run again from the newest complete
checkpoint, at most `rl.max_auto_resumes` times (`vo3rl.orchestration.auto_resume`).
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from vo3rl.config.schema import Recipe
from vo3rl.data.readers import read_samples
from vo3rl.data.schema import Sample
from vo3rl.data.skips import SkipLog
from vo3rl.evaluation.compare import compare_evaluations
from vo3rl.evaluation.episodes import evaluate_records
from vo3rl.log import get_logger, progress
from vo3rl.metrics import MetricsLog, open_wandb, trajectory_table
from vo3rl.orchestration.auto_resume import with_auto_resume
from vo3rl.orchestration.ray_setup import start_ray
from vo3rl.rl.overlap import SyncSteps, step_runner
from vo3rl.rl.step import PromptSet, StepServices
from vo3rl.train.checkpoint import hf_dir, latest_checkpoint, read_driver_state, write_checkpoint
from vo3rl.workers.learner import LearnerGroup
from vo3rl.workers.placement import Colocation, colocate
from vo3rl.workers.reward import RewardPool
from vo3rl.workers.rollout import RolloutGroup
from vo3rl.workers.weight_sync import ProcessGroupSync, weight_sync_backend

log = get_logger(__name__)


@dataclass
class RLRun:
    """What an RL run holds between steps."""

    recipe: Recipe
    out: Path
    prompts: PromptSet
    services: StepServices
    metrics: MetricsLog
    eval_samples: list[Sample] = field(default_factory=list)
    step: int = 0
    driver_state: dict = field(default_factory=dict)  # the checkpoint's, as resumed
    steps: SyncSteps | None = None  # the step runner of rl.mode
    eval_records: list[dict] = field(default_factory=list)  # the episodes of the latest evaluation

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"

    def evaluate(self) -> dict:
        """Greedy episodes on the eval split; each one is kept in `eval/step_<n>.jsonl`."""
        if self.steps is not None:
            self.steps.pause()
        metrics, self.eval_records = evaluate_records(self.services.rollout, self.services.rewards, self.eval_samples,
                                                      self.out / "eval" / f"step_{self.step:06d}.jsonl")
        return metrics

    def save(self) -> Path:
        """Checkpoint the policy, optimizer and driver state as `checkpoints/step_<n>` (the servable
        model in its `hf/`), keeping the newest `learner.keep_last`."""
        state = {"step": self.step, "seed": self.prompts.seed, "wandb_id": self.metrics.wandb_id,
                 **(self.steps.driver_state() if self.steps is not None else {})}
        path = write_checkpoint(self.services.learner, self.checkpoints / f"step_{self.step:06d}", state,
                                keep_last=self.recipe.learner.keep_last)
        log.info("checkpoint %s", path)
        return path

    def close(self) -> None:
        if self.steps is not None:
            self.steps.close()
        if self.services.weight_sync is not None:
            self.services.weight_sync.close()
        self.metrics.close()

    def release(self) -> None:
        """After a failed attempt: kill every actor first (so nothing below waits on a lost one), then
        close the rest, each part on its own so that one more error frees the others all the same."""
        services = self.services
        kill_actors([services.rollout, services.rewards, services.learner, services.reference])
        parts = [self.steps.close if self.steps is not None else None,
                 services.weight_sync.close if services.weight_sync is not None else None, self.metrics.close]
        for part in filter(None, parts):
            try:
                part()
            except Exception as exc:  # the attempt already failed; its error is the one that counts
                log.warning("releasing the failed RL attempt: %s: %s", type(exc).__name__, exc)


@dataclass
class RunProgress:
    """What carries over from one attempt of an RL run to the next (`train`'s auto-resume): the
    checkpoint the next attempt starts from (the newest complete one it knows; None: step 0), the W&B
    run they share, and the summary so far (per-step lists from `first_step` on, the evaluation before)."""

    checkpoint: Path | None
    first_step: int = 0
    wandb_id: str | None = None
    summary: dict = field(default_factory=lambda: {"reward_by_step": [], "accuracy_by_step": []})
    before_records: list[dict] = field(default_factory=list)

    @property
    def step(self) -> int:
        """The step the next attempt starts at (the checkpoint's; 0 without one)."""
        return int(read_driver_state(self.checkpoint)["step"]) if self.checkpoint is not None else 0

    def rewind(self, step: int) -> None:
        """Forget the per-step figures of steps from `step` on (the attempt redoes them)."""
        for key in ("reward_by_step", "accuracy_by_step"):
            del self.summary[key][max(0, step - self.first_step):]


def kill_actors(groups: list) -> None:
    """Kill each actor group (`kill()` where it has one, else its `shutdown()`, which only kills), none
    waited on; a group that fails to go is logged and the others still are."""
    for group in filter(None, groups):
        try:
            (group.kill if hasattr(group, "kill") else group.shutdown)()
        except Exception as exc:
            log.warning("could not release %s: %s: %s", type(group).__name__, type(exc).__name__, exc)


def _read(path: str, recipe: Recipe, skips: SkipLog) -> list[Sample]:
    return list(read_samples(path, recipe.data.format, data_root=recipe.data.root or None, skips=skips))


def rl_dir(recipe: Recipe) -> Path:
    return Path(recipe.run.output_dir) / "rl"


def open_rl_run(recipe: Recipe, resume: Path | None, wandb_id: str | None = None) -> RLRun:
    """Start Ray and the workers, read the prompts, and resume from the complete checkpoint `resume`
    (None: step 0 from `rl.init_from`). `wandb_id`: the W&B run to continue when the checkpoint names none.
    A failure half-way kills the actors already started."""
    cfg = recipe.rl
    out = rl_dir(recipe)
    for stale in (out / "checkpoints").glob("*.tmp"):  # a write killed half-way; the previous one stands
        shutil.rmtree(stale, ignore_errors=True)
    skips = SkipLog("rl prompts")
    samples = _read(recipe.data.train, recipe, skips)
    if not samples:
        raise ValueError(f"no usable RL samples in {recipe.data.train} ({skips.summary()})")
    eval_samples = []
    if cfg.eval_samples and recipe.data.eval:
        eval_samples = _read(recipe.data.eval, recipe, SkipLog("rl eval"))[: cfg.eval_samples]
    policy = str(hf_dir(resume) if resume is not None else cfg.init_from or recipe.model.path)
    log.info("RL policy from %s (%d samples)", policy, len(samples))
    start_ray(recipe.ray)
    started: list = []  # what a failure before the run is assembled must release
    try:
        return _assemble(recipe, samples, eval_samples, policy, resume, wandb_id, started)
    except BaseException:
        kill_actors(started)
        raise


def _assemble(recipe: Recipe, samples: list[Sample], eval_samples: list[Sample], policy: str, resume: Path | None,
              wandb_id: str | None, started: list) -> RLRun:
    cfg, out = recipe.rl, rl_dir(recipe)
    # The rollout workers reserve their CPUs first; the learner ranks and the KL reference share what is
    # left (a fraction of a CPU each when fewer are left than holders: Ray placement accepts that).
    ranks = recipe.learner.ranks
    holders = ranks + (1 if cfg.loss.kl_coef else 0)
    rollout_cpus = cfg.rollout_workers * recipe.rollout.worker_cpus
    left = (recipe.ray.num_cpus or holders + rollout_cpus) - rollout_cpus
    cpus = max(1, int(left // holders)) if left >= holders else max(left, 1) / holders
    updates = max(1, cfg.steps * cfg.updates_per_batch)
    placed = dict(gpus_per_rank=cfg.learner_gpus, placement_timeout_s=recipe.ray.placement_timeout_s)
    colocation = None
    if recipe.placement.colocated:  # rank i and engine i in bundle i (`docs/scale_out.md`, Layouts)
        colocation = colocate(ranks, cpus, recipe.rollout.worker_cpus, cfg.learner_gpus,
                              recipe.ray.placement_timeout_s)
        started.append(colocation)
        log.info("colocated layout: %d bundles of learner %s + rollout %s", ranks, colocation.shares["learner"],
                 colocation.shares["rollout"])
    learner = _policy_learner(policy, recipe, updates, cpus, placed, colocation)
    started.append(learner)
    if cfg.lr is not None or cfg.warmup_ratio is not None:
        learner.reset_schedule(updates, cfg.lr, cfg.warmup_ratio)
    reference = None
    if cfg.loss.kl_coef:
        reference = LearnerGroup(cfg.init_from or recipe.model.path, recipe.learner, 1, cpus_per_rank=cpus, **placed)
        started.append(reference)
    driver_state = read_driver_state(resume) if resume is not None else {}
    rollout = RolloutGroup(policy, recipe, cfg.rollout_workers, weight_version=int(driver_state.get("step", 0)),
                           concurrent_updates=cfg.mode == "async", colocation=colocation,
                           sleep_level=recipe.placement.sleep_level if colocation else None)
    started.append(rollout)
    rewards = RewardPool(recipe.reward, cfg.reward_workers, cfg.judge_concurrency, recipe.run.log_level)
    started.append(rewards)
    services = StepServices(rollout=rollout, rewards=rewards, learner=learner, reference=reference,
                            colocated=rollout if colocation else None)
    if cfg.weight_sync == "process_group":  # else the object store (sync_weights' default path)
        # NCCL refuses two members on one GPU ("Duplicate GPU detected"), and colocated learner rank 0
        # shares its GPU with engine 0: that group goes over gloo (through host memory).
        backend = "gloo" if colocation else weight_sync_backend(cfg.learner_gpus, recipe.rollout.worker_gpus)
        services.weight_sync = ProcessGroupSync(learner, services.rollout, cfg.weight_sync_bucket_mb, backend)
    metrics = MetricsLog(out / "metrics.jsonl", open_wandb(recipe, out, job_type="rl",
                                                           resume_id=driver_state.get("wandb_id") or wandb_id))
    run = RLRun(recipe=recipe, out=out, prompts=PromptSet(samples, recipe.run.seed), services=services,
                metrics=metrics, eval_samples=eval_samples, driver_state=driver_state)
    if resume is not None:
        saved = learner.load_checkpoint(str(resume), True)
        run.step = int(driver_state["step"])
        log.info("resumed at step %d from %s (learner step %s)", run.step, resume, saved.get("step"))
    return run


def _policy_learner(policy: str, recipe: Recipe, updates: int, cpus: float, placed: dict,
                    colocation: Colocation | None) -> LearnerGroup:
    """The policy's learner ranks: in bundles of their own, or in the colocated bundles with the rank's
    share of each (the learner group reserves through `place`, which the colocation answers)."""
    if colocation is None:
        return LearnerGroup(policy, recipe.learner, total_steps=updates, cpus_per_rank=cpus, **placed)
    share = colocation.shares["learner"]
    with colocation.hosting("learner"):
        return LearnerGroup(policy, recipe.learner, total_steps=updates, cpus_per_rank=share["CPU"],
                            **(placed | {"gpus_per_rank": share.get("GPU", 0)}))


def train(recipe: Recipe) -> dict:
    """The RL stage of `recipe`; resumes from the newest complete checkpoint when `rl.resume`, and
    in-process after a lost learner rank or node, at most `rl.max_auto_resumes` times. The summary counts
    those resumes and names the step each restarted from."""
    out = rl_dir(recipe)
    progress_so_far = RunProgress(latest_checkpoint(out / "checkpoints") if recipe.rl.resume else None)
    progress_so_far.first_step = progress_so_far.step
    summary, resumed_from = with_auto_resume(lambda: _train_once(recipe, progress_so_far), recipe.rl.max_auto_resumes,
                                             lambda: progress_so_far.step)
    summary.update({"auto_resumes": len(resumed_from), "auto_resumed_from_steps": resumed_from})
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _train_once(recipe: Recipe, so_far: RunProgress) -> dict:
    """One attempt: open the run at `so_far.checkpoint`, train to `rl.steps`, evaluate, save. Each
    checkpoint it writes becomes `so_far.checkpoint`; a failure releases every actor it started."""
    run = open_rl_run(recipe, so_far.checkpoint, so_far.wandb_id)
    so_far.wandb_id = run.metrics.wandb_id
    so_far.rewind(run.step)
    cfg, summary = recipe.rl, so_far.summary
    try:
        run.steps = step_runner(cfg, run.prompts, run.services, run.step, run.driver_state)
        if run.step == 0 and run.eval_samples:
            summary["before"] = run.evaluate()
            so_far.before_records = run.eval_records
            run.metrics.log(summary["before"], step=0)
        for step in progress(range(run.step, cfg.steps), desc="rl", total=cfg.steps - run.step, unit="step"):
            start = time.perf_counter()
            result = run.steps.run(step)
            metrics = result.metrics
            metrics["time/step_s"] = time.perf_counter() - start
            run.metrics.log(metrics, step=step + 1)
            _log_trajectories(run, step, result.scored)
            summary["reward_by_step"].append(round(metrics.get("reward/total", float("nan")), 4))
            summary["accuracy_by_step"].append(round(metrics.get("reward/accuracy", float("nan")), 4))
            log.info("step %d/%d reward %.3f acc %.3f kept %d groups (%.0f s)", step + 1, cfg.steps,
                     metrics.get("reward/total", float("nan")), metrics.get("reward/accuracy", float("nan")),
                     metrics.get("batch/groups_kept", 0), metrics["time/step_s"])
            run.step = step + 1
            if cfg.eval_every and run.step % cfg.eval_every == 0 and run.step < cfg.steps:
                run.metrics.log(run.evaluate(), step=run.step)
            if cfg.save_every and run.step % cfg.save_every == 0 and run.step < cfg.steps:
                so_far.checkpoint = run.save()
        run.steps.pause()
        final = run.save() if cfg.steps else None
        so_far.checkpoint = final or so_far.checkpoint
        if run.eval_samples:
            summary["after"] = run.evaluate()
            run.metrics.log(summary["after"], step=run.step)
            if so_far.before_records:  # a run resumed from disk has no before-evaluation of its own to pair with
                summary["eval"] = compare_evaluations(summary["before"], so_far.before_records, summary["after"],
                                                      run.eval_records)
        rollout = run.services.rollout
        summary.update({"steps": run.step, "checkpoint": str(final) if final else None,
                        "skipped_samples": dict(rollout.skipped), "failed_trajectories": dict(rollout.failed)})
    except BaseException:
        run.release()
        raise
    run.close()
    return summary


def _log_trajectories(run: RLRun, step: int, scored: list) -> None:
    every = run.recipe.rl.log_trajectories_every
    if every and (step + 1) % every == 0 and scored:
        shown = scored[:8]
        run.metrics.table("trajectories", trajectory_table([s.trajectory for s in shown], [s.result for s in shown]),
                          step=step + 1)
