"""Rollout overlapped with training: `rl.mode` one_step_off and async (sync is `vo3rl.rl.step.rl_step`).

A step of the sync mode runs rollout, reward, update and weight sync one after another, so the rollout
engines idle while the learner updates and the learner idles while they generate. Both modes here run
the same pieces (`collect_groups` / `collect_round`, `train_on`, `sync_weights`) on two threads of the
driver (every call is a Ray call, so the threads only wait):

- **one_step_off**: while the learner trains on step n's batch, the batch of step n+1 is collected with
  the weights from before that update; the sync waits for both. Every trajectory is exactly one weight
  version old; the data is the sync mode's, step for step.
- **async**: a producer thread generates rounds of `prompts_per_step` prompts into a queue of at most
  `rl.queue_size` rounds. A step takes rounds from it until its dynamic batch is full; a group with a
  trajectory more than `rl.max_staleness` versions older than the learner is dropped and counted
  (`async/groups_stale`). So that little is dropped, the producer starts a round only when the weights
  it would sample with are recent enough for the step expected to take it (AReaL's staleness-bounded
  production), at the rate the steps have taken rounds so far (refills take more than one per step). The weight sync runs while the engines decode: their turns in flight
  are interrupted and resumed under the new weights (`rollout.interrupted_turns`), each token keeping
  the log-prob of the weights that sampled it. Round r draws the prompts `prompts_for(r, 0, ...)`, so the
  data order is seeded; rounds still in the queue when a run stops are dropped, and a resumed run
  starts at the first round no step took (`next_round`, kept in the checkpoint's driver state).

The staleness a step trains on is corrected by the loss's importance weights (`rl.loss.is_correction`);
without them the update treats stale tokens as on-policy.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from vo3rl.config.rl import RLConfig
from vo3rl.log import get_logger
from vo3rl.rl.groups import Group, Scored, prompts_for
from vo3rl.rl.step import (Collected, PromptSet, StepResult, StepServices, collect_groups, collect_round, new_batch,
                           rl_step, sync_weights, train_on)

log = get_logger(__name__)
PAUSE_TIMEOUT_S = 900.0  # the round being generated finishes first; a stuck engine must not hang the run


def staleness(group: Group, version: int) -> int:
    """Weight versions between the learner (`version`: its weights before this step's update) and the
    oldest weights that sampled any token of the group (0 when no member records its versions).
    Versions are labelled by step (the weights after step n's update are version n + 1), so a step
    without an update makes the count an upper bound on the updates in between."""
    oldest = [m.trajectory.oldest_version for m in group.members if m.trajectory.oldest_version is not None]
    return version - min(oldest) if oldest else 0


def admit(groups: list[Group], version: int, max_staleness: int) -> tuple[list[Group], int]:
    """The groups at most `max_staleness` versions old, and how many were older. A group stays whole:
    its advantage needs all G of its trajectories."""
    fresh = [g for g in groups if staleness(g, version) <= max_staleness]
    return fresh, len(groups) - len(fresh)


def staleness_metrics(collected: Collected, version: int) -> dict[str, float]:
    """Mean and max staleness over the trajectories the step trains on."""
    ages = [version - m.trajectory.oldest_version for g in collected.batch.groups for m in g.members
            if m.trajectory.oldest_version is not None]
    return {"async/staleness_mean": float(np.mean(ages)), "async/staleness_max": float(max(ages))} if ages else {}


class SyncSteps:
    """`rl.mode: sync`: `rl_step`, nothing overlapped."""

    def __init__(self, cfg: RLConfig, prompts: PromptSet, services: StepServices, start_step: int = 0,
                 next_round: int = 0):
        self.cfg, self.prompts, self.services = cfg, prompts, services
        self.version = start_step  # the version of the learner's (and, once synced, the engines') weights

    def run(self, step: int) -> StepResult:
        result = rl_step(step, self.cfg, self.prompts, self.services)
        if result.metrics.get("batch/groups_kept"):
            self.version = step + 1
        return result

    def _sync(self, step: int, collected: Collected, timings: dict) -> None:
        if collected.batch.groups:
            sync_weights(self.services, step + 1, timings)
            self.version = step + 1

    def pause(self) -> None:
        """Nothing runs between steps."""

    def driver_state(self) -> dict:
        return {}

    def close(self) -> None:
        self.pause()


class OneStepOffSteps(SyncSteps):
    """`rl.mode: one_step_off` (the module docstring)."""

    def __init__(self, cfg: RLConfig, prompts: PromptSet, services: StepServices, start_step: int = 0,
                 next_round: int = 0):
        super().__init__(cfg, prompts, services, start_step)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="rollout-ahead")
        self._ahead: tuple[int, Future] | None = None

    def _collect(self, step: int) -> tuple[Collected, dict]:
        timings: dict[str, float] = {}
        return collect_groups(step, self.cfg, self.prompts, self.services, timings), timings

    def run(self, step: int) -> StepResult:
        start = time.perf_counter()
        if self._ahead is not None and self._ahead[0] == step:
            collected, timings = self._ahead[1].result()
        else:  # the first step (or the first after a pause) has nothing collected ahead
            collected, timings = self._collect(step)
        self._ahead = None
        if step + 1 < self.cfg.steps:
            self._ahead = (step + 1, self._pool.submit(self._collect, step + 1))
        waited = time.perf_counter() - start
        trained_on = self.version
        result = train_on(step, self.cfg, collected, self.services, timings)
        if self._ahead is not None:
            self._ahead[1].exception()  # the next batch is sampled with the weights it must be stale by
        self._sync(step, collected, timings)
        result.metrics.update(staleness_metrics(collected, trained_on))
        result.metrics.update({f"time/{phase}_s": seconds for phase, seconds in timings.items()})
        result.metrics["time/wait_for_rollout_s"] = waited
        return result

    def pause(self) -> None:
        """Wait for the batch collected ahead (an evaluation needs the engines). It stays one version
        old, so the next step trains on it as usual."""
        if self._ahead is not None:
            self._ahead[1].exception()

    def close(self) -> None:
        self.pause()
        self._pool.shutdown(wait=True)


@dataclass
class Round:
    """One producer round: its index (the seed of its prompts), groups, every scored trajectory,
    groups dropped for a failed reward term, prompt ids, the engines' stats and rollout/reward seconds."""

    index: int
    groups: list[Group]
    scored: list[Scored]
    broken: int
    prompt_ids: list[str]
    engine_stats: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class AsyncSteps(SyncSteps):
    """`rl.mode: async` (the module docstring). `next_round`: the first producer round to generate
    (a resumed run's driver state)."""

    def __init__(self, cfg: RLConfig, prompts: PromptSet, services: StepServices, start_step: int = 0,
                 next_round: int = 0):
        super().__init__(cfg, prompts, services, start_step)
        self.next_round = next_round  # the first round no step has taken
        self.step = start_step
        self.steps_taken = start_step  # steps that took their rounds
        self._first_step, self._first_round = start_step, next_round
        self._queue: queue.Queue[Round] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # -- the producer -------------------------------------------------------------------------
    def _start(self) -> None:
        self._queue, self._error = queue.Queue(maxsize=self.cfg.queue_size), None
        self._stop.clear()
        self._thread = threading.Thread(target=self._produce, args=(self.next_round,), name="rollout-producer",
                                        daemon=True)
        self._thread.start()

    def _produce(self, first: int) -> None:
        index = first
        try:
            while not self._stop.is_set():
                if not self._recent_enough(index):
                    time.sleep(0.02)
                    continue
                order = prompts_for(index, 0, len(self.prompts.samples), self.cfg.prompts_per_step, self.prompts.seed)
                picked = [self.prompts.samples[i] for i in order]
                timings: dict[str, float] = {}
                groups, scored, broken, stats = collect_round(picked, self.cfg, self.prompts, self.services,
                                                              min(1.0, self.step / max(1, self.cfg.steps)), timings)
                produced = Round(index, groups, scored, broken, [s.id for s in picked], stats, timings)
                while not self._stop.is_set():
                    try:
                        self._queue.put(produced, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                index += 1
        except BaseException as err:  # handed to the learner's thread, which raises it
            self._error = err

    def _recent_enough(self, index: int) -> bool:
        """Whether round `index`, sampled with the current weights, would be fresh enough for the step
        expected to take it, at the rate steps have taken rounds so far (more than one per step when
        dynamic sampling refills)."""
        steps = self.steps_taken - self._first_step
        per_step = max(1.0, (self.next_round - self._first_round) / steps) if steps else 1.0
        expected_step = self.steps_taken + int((index - self.next_round) / per_step)
        return self.version >= expected_step - self.cfg.max_staleness

    def _take(self) -> Round:
        """The next round, waiting for the producer; raises what stopped it."""
        if self._thread is None:
            self._start()
        while True:
            if self._error is not None:
                raise RuntimeError(f"the rollout producer failed: {self._error}") from self._error
            try:
                return self._queue.get(timeout=0.5)
            except queue.Empty:
                if not self._thread.is_alive() and self._error is None:
                    raise RuntimeError("the rollout producer stopped")

    # -- a step ---------------------------------------------------------------------------------
    def run(self, step: int) -> StepResult:
        self.step = step
        timings: dict[str, float] = {}
        collected, stale, waited = Collected(new_batch(self.cfg)), 0, 0.0
        while not collected.batch.done:
            start = time.perf_counter()
            taken = self._take()
            waited += time.perf_counter() - start
            self.next_round = taken.index + 1
            fresh, old = admit(taken.groups, self.version, self.cfg.max_staleness)
            stale += old
            collected.scored += taken.scored
            collected.broken += taken.broken
            collected.prompt_ids += taken.prompt_ids
            collected.engine_stats += taken.engine_stats
            collected.batch.offer(fresh)
            for phase, seconds in taken.timings.items():
                timings[phase] = timings.get(phase, 0.0) + seconds
        self.steps_taken = step + 1
        trained_on = self.version
        result = train_on(step, self.cfg, collected, self.services, timings)
        self._sync(step, collected, timings)  # interrupts the producer's turns in flight
        result.metrics.update(staleness_metrics(collected, trained_on))
        result.metrics.update({f"time/{phase}_s": seconds for phase, seconds in timings.items()})
        result.metrics.update({"async/groups_stale": stale, "time/wait_for_rollout_s": waited,
                               "async/queue_rounds": self._queue.qsize()})
        return result

    def pause(self) -> None:
        """Stop the producer and drop the rounds it made ahead (an evaluation or the end of the run);
        the next step starts it again at `next_round`. Waits for the round it is generating."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=PAUSE_TIMEOUT_S)
        if self._thread.is_alive():
            raise RuntimeError(f"the rollout producer did not stop within {PAUSE_TIMEOUT_S:.0f} s")
        dropped = self._queue.qsize()
        if dropped:
            log.info("async: dropped %d rounds generated ahead", dropped)
        self._thread, self._queue = None, None

    def driver_state(self) -> dict:
        return {"next_round": self.next_round}


MODES = {"sync": SyncSteps, "one_step_off": OneStepOffSteps, "async": AsyncSteps}


def step_runner(cfg: RLConfig, prompts: PromptSet, services: StepServices, start_step: int = 0,
                driver_state: dict | None = None) -> SyncSteps:
    """The runner of `rl.mode`, resuming at `start_step` with a checkpoint's `driver_state`."""
    return MODES[cfg.mode](cfg, prompts, services, start_step, int((driver_state or {}).get("next_round", 0)))
