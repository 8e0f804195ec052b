"""Rollout workers: Ray actors that each own a vLLM engine and run agent episodes on it
(`vo3rl.rollout.service.RolloutService`); this file only hosts them and fans calls out.

    group = RolloutGroup(model_path, recipe, n_workers=1)
    trajectories = group.generate(samples, n_per_sample=16, mode="train")  # group_index set, log-probs in
    group.skipped, group.failed                                            # counted, never raised
    group.update_weights(learner_state_dict)                               # in place, prefix cache reset
    results = group.tts(samples, n=8, vote="confidence")                   # Open-o3 test-time scaling

With several workers a generate call is cut into work units dealt from a queue to whichever worker is
free next (`vo3rl.rollout.routing`: units, sticky or round-robin members, the call's order); with one,
it is one call with the whole batch. A worker that dies (its process killed, out of memory) is
restarted, given the newest weights, and the unit it was running generated again, at most
`max_restarts` times per unit. With the process-group weight sync (`vo3rl.workers.weight_sync`) the
newest weights are in no object: `on_restart` brings them.

Colocated (`placement.layout: colocated`): the workers go into the learner's bundles (`colocation`, one
per rank), their engines built for vLLM's sleep mode; `sleep()` before the update and `wake_up()` before
the weight sync hand their device memory to the learner and back (`vo3rl.rollout.sleep`).
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import asdict, fields
from pathlib import Path

import ray
from ray.util.placement_group import remove_placement_group

from vo3rl.config.rollout import RolloutConfig
from vo3rl.log import get_logger
from vo3rl.rollout.routing import Piece, in_call_order, plan, take
from vo3rl.workers.placement import in_bundle, place

log = get_logger(__name__)


def _load_tokenizer(model_path: str):
    """The tokenizer saved with the model, else the one built from Qwen's BPE ranks."""
    if (Path(model_path) / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model_path)
    from vo3rl.model.tokenizer import build_tokenizer

    return build_tokenizer()


@ray.remote
class RolloutWorker:
    """One vLLM engine and the episode driver around it. Arguments are plain dicts (recipe sections)."""

    def __init__(self, model_path: str, cfg: dict, presets: dict | None = None, templates: dict | None = None,
                 cache_mb: int = 512, log_level: str = "INFO", grammar: dict | None = None, weight_version: int = 0,
                 concurrent_updates: bool = False, sleep_mode: bool = False):
        from vo3rl.config.prompts import PromptTemplates
        from vo3rl.log import setup_logging
        from vo3rl.rollout.service import RolloutService
        from vo3rl.rollout.vllm_engine import VLLMEngine
        from vo3rl.video.cache import DecodeCache

        setup_logging(log_level)
        config = RolloutConfig(**cfg)
        tokenizer = _load_tokenizer(model_path)
        self.model_path = model_path
        # With concurrent updates (asynchronous RL: the actor runs two calls at once) a weight update
        # interrupts a running `generate`; one generate, tts or score call runs at a time all the same.
        self.engine = VLLMEngine(model_path, config, tokenizer, weight_version, stream_outputs=concurrent_updates,
                                 sleep_mode=sleep_mode)
        self._calls = threading.Lock()
        self.service = RolloutService(self.engine, tokenizer, config, presets,
                                      PromptTemplates(**(templates or {})), DecodeCache(max_bytes=cache_mb << 20),
                                      grammar)

    def ready(self) -> dict:
        """Health check: answers once the engine is up; `peak_rss_gib` is this worker process's peak memory;
        `node_id` and `placement_group` (hex ids; None outside one) say where Ray placed it."""
        import resource

        context = ray.get_runtime_context()
        return {"model": self.model_path, "pid": os.getpid(), "weight_version": self.engine.weight_version,
                "busy": self.engine.busy, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                "node_id": context.get_node_id(), "placement_group": context.get_placement_group_id()}

    def generate(self, samples: list, n_per_sample: int, mode: str = "train", group_offset: int = 0,
                 members: list | None = None, call: int | None = None):
        """A `RolloutBatch`: trajectories (with rollout log-probs), skipped samples, failures, stats.
        `members`, `call`: which members of each group to run and the call their seeds derive from
        (`RolloutService.generate`), when one call is spread over several workers."""
        with self._calls:
            return self.service.generate(samples, n_per_sample, mode, group_offset, members, call)

    def tts(self, samples: list, n: int, vote: str = "confidence", group_offset: int = 0):
        """A `TTSBatch`: per sample N sampled answers, their ratings and weights, the voted answer."""
        with self._calls:
            return self.service.tts(samples, n, vote, group_offset)

    def score(self, trajectories: list) -> list:
        """vLLM's log-prob of every token of each trajectory (for rollout/learner agreement checks)."""
        with self._calls:
            return self.service.score(trajectories)

    def clear_caches(self) -> None:
        """Forget processed videos, vision embeddings and KV blocks (a benchmark starts each measurement cold)."""
        self.engine.clear_caches()

    def sleep(self, level: int) -> dict:
        """The engine's device memory released (`VLLMEngine.sleep`); its figures."""
        with self._calls:
            return self.engine.sleep(level).as_dict()

    def wake_up(self) -> dict:
        with self._calls:
            return self.engine.wake_up().as_dict()

    def update_weights(self, state_dict: dict, version: int | None = None) -> int:
        """Load new weights in place (an object ref passed as the argument arrives resolved), as
        `version`; returns the engine's weight version."""
        self.engine.update_weights(state_dict, version)
        return self.engine.weight_version

    # -- the weight-sync group (`rl.weight_sync: process_group`) ----------------------------------
    def join_weight_sync(self, host: str, port: int, first_rank: int, world_size: int, backend: str,
                         timeout_s: float) -> list[int]:
        return self.engine.join_weight_sync(host, port, first_rank, world_size, backend, timeout_s)

    def receive_weights(self, version: int | None = None) -> int:
        """Receive one broadcast of the weights and load it in place, as `version`; returns the
        engine's weight version."""
        self.engine.receive_weights(version)
        return self.engine.weight_version

    def leave_weight_sync(self) -> None:
        self.engine.leave_weight_sync()

    def weights_digest(self) -> dict[str, str]:
        """SHA-256 per loaded tensor (`VLLMEngine.weights_digest`), to compare two engines' weights."""
        return self.engine.weights_digest()


def rollout_config(section) -> RolloutConfig:
    """A RolloutConfig from a recipe's `rollout:` section (a RolloutConfig, a mapping, or None)."""
    if section is None:
        return RolloutConfig()
    if isinstance(section, RolloutConfig):
        return section
    if not isinstance(section, dict):
        from omegaconf import OmegaConf

        section = OmegaConf.to_container(section, resolve=True) if OmegaConf.is_config(section) else vars(section)
    known = {f.name for f in fields(RolloutConfig)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValueError(f"rollout: unknown key(s) {unknown}")
    return RolloutConfig(**dict(section))


def _plain(section) -> dict:
    if section is None:
        return {}
    if isinstance(section, dict):
        return dict(section)
    if hasattr(section, "__dataclass_fields__"):
        return asdict(section)
    from omegaconf import OmegaConf

    return OmegaConf.to_container(section, resolve=True)


class RolloutGroup:
    """`n_workers` rollout actors serving the policy at `model_path`. Settings come from `recipe`
    (`rollout`, `video.presets`, `video.cache_mb`, `prompts`, `run.log_level`) unless given directly.
    `worker_class` replaces the actor class (tests use a light stand-in). `weight_version`: the
    version of the weights at `model_path` (a resumed run's step); `concurrent_updates`: a weight
    update may come while `generate` runs (asynchronous RL) and interrupts its turns. `colocation`: the
    learner's bundles (`vo3rl.workers.placement.colocate`), worker i in bundle i with the rollout share,
    instead of a placement group of its own; `sleep_level`: the engines can `sleep` at that vLLM level
    and `wake_up` (None: they never sleep)."""

    def __init__(self, model_path: str, recipe=None, n_workers: int = 1, cfg: RolloutConfig | None = None,
                 presets: dict | None = None, templates: dict | None = None, cache_mb: int | None = None,
                 log_level: str | None = None, max_restarts: int = 2, worker_class=None,
                 placement_timeout_s: float | None = None, weight_version: int = 0, concurrent_updates: bool = False,
                 colocation=None, sleep_level: int | None = None):
        video = getattr(recipe, "video", None)
        self.cfg = cfg or rollout_config(getattr(recipe, "rollout", None))
        self.cfg.validate()
        self.model_path = str(model_path)
        self.presets = presets if presets is not None else _plain(getattr(video, "presets", None))
        self.templates = templates if templates is not None else _plain(getattr(recipe, "prompts", None))
        reward = getattr(recipe, "reward", None)  # the tool-call grammar's one source
        self.grammar = ({"strategies": list(reward.strategies), "min_segment_s": reward.min_segment_s}
                        if reward is not None else None)
        self.cache_mb = cache_mb or int(getattr(video, "cache_mb", 512))
        self.log_level = log_level or getattr(getattr(recipe, "run", None), "log_level", "INFO")
        self.max_restarts = max_restarts
        self.worker_class = worker_class or RolloutWorker
        self.skipped: Counter = Counter()
        self.failed: Counter = Counter()
        self.last_skipped: dict[str, str] = {}  # sample id -> reason, of the latest generate call
        self.restarts = 0
        self.last_stats: list[dict] = []  # per worker call of the latest generate / tts (one per unit)
        self.calls = 0  # generate calls spread over several workers: their seeds' call number
        self._weights = None  # object ref of the newest weights, given to a restarted worker
        self.on_restart = None  # (index, worker) -> None: its weights when no object holds them (process group)
        self.weight_version = weight_version
        self.concurrent_updates = concurrent_updates
        self.sleep_level = sleep_level
        self._sleep_reason_logged = False
        timeout_s = placement_timeout_s or getattr(getattr(recipe, "ray", None), "placement_timeout_s", 600.0)
        self.resources = {"CPU": self.cfg.worker_cpus, "GPU": self.cfg.worker_gpus}
        self._owns_placement = colocation is None
        if colocation is not None:  # the learner's bundles: the colocation frees them, not this group
            self.resources = {"CPU": 0.0, "GPU": 0.0} | colocation.shares["rollout"]
            self.placement = colocation.claim("rollout", n_workers, colocation.shares["rollout"])
        else:
            bundle = {key: amount for key, amount in self.resources.items() if amount}
            # Reserved first, so that a cluster without room says so instead of leaving the engines pending.
            self.placement = (place("rollout", n_workers, bundle, timeout_s, "Lower rl.rollout_workers or "
                                    "rollout.worker_cpus / rollout.worker_gpus") if bundle and n_workers else None)
        self.placement_timeout_s = timeout_s
        self.workers = [self._start(index) for index in range(n_workers)]
        try:
            ray.get([w.ready.remote() for w in self.workers])
        except BaseException:  # a worker that cannot start: free what was reserved for the others too
            self.shutdown()
            raise

    def _start(self, index: int):
        options = {"num_cpus": self.resources["CPU"], "num_gpus": self.resources["GPU"]}
        if self.placement is not None:
            options["scheduling_strategy"] = in_bundle(self.placement, index)
        if self.concurrent_updates:
            options["max_concurrency"] = 2  # a generate and an update_weights at once
        sleeps = {"sleep_mode": True} if self.sleep_level is not None else {}  # stand-in workers need not know
        return self.worker_class.options(**options).remote(
            self.model_path, asdict(self.cfg), self.presets, self.templates, self.cache_mb, self.log_level,
            self.grammar, self.weight_version, self.concurrent_updates, **sleeps)

    def _restart(self, index: int) -> None:
        self.restarts += 1
        log.warning("rollout worker %d died; restarting it (%d restarts so far)", index, self.restarts)
        try:
            ray.kill(self.workers[index])
        except Exception:  # already gone
            pass
        worker = self._started(index)
        if self._weights is not None:
            ray.get(worker.update_weights.remote(self._weights, self.weight_version))
        elif self.on_restart is not None:
            self.on_restart(index, worker)
        self.workers[index] = worker

    def _started(self, index: int):
        """Worker `index` started again and answering, within `placement_timeout_s` seconds. A worker
        whose node has just died may be placed on it before Ray declares the node dead (its bundle is
        rescheduled only then), so one that dies while starting is started again until the deadline."""
        deadline = time.monotonic() + self.placement_timeout_s
        while True:
            worker = self._start(index)
            try:
                ray.get(worker.ready.remote(), timeout=max(1.0, deadline - time.monotonic()))
                return worker
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
                ray.kill(worker)
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"rollout worker {index} did not start again within "
                                       f"{self.placement_timeout_s:g} s (ray.placement_timeout_s): {exc}") from exc
                log.warning("restarted rollout worker %d did not start (%s); trying again", index,
                            type(exc).__name__)
                time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))

    def _submit(self, index: int, method: str, samples: list, piece: Piece, args: tuple, call: int | None):
        """Worker `index` runs `method(samples of piece, *args, group offset[, members][, call])`."""
        extra = {}
        if piece.members is not None:
            extra["members"] = [list(members) for members in piece.members]
        if call is not None:
            extra["call"] = call
        return getattr(self.workers[index], method).remote(samples[piece.start : piece.stop], *args, piece.start,
                                                           **extra)

    def _run_pieces(self, method: str, samples: list, pieces: list[Piece], args: tuple,
                    call: int | None = None) -> list[tuple[Piece, int, object]]:
        """Every piece run once: each worker runs one piece at a time and takes the next one it may run
        when it finishes (ray.wait), so a slow worker runs fewer. A worker that dies is restarted and its
        piece run again (first, on the restarted worker), at most `max_restarts` times per piece.
        (piece, worker index, batch) in piece order."""
        pending, running, done, attempts = list(pieces), {}, {}, Counter()

        def give_work(index: int) -> None:
            piece = take(pending, index)
            if piece is not None:
                running[self._submit(index, method, samples, piece, args, call)] = (index, piece)

        for index in range(len(self.workers)):
            give_work(index)
        while running:
            [ref], _ = ray.wait(list(running), num_returns=1)
            index, piece = running.pop(ref)
            try:
                done[piece] = (index, ray.get(ref))
            except ray.exceptions.RayActorError:
                attempts[piece] += 1
                if attempts[piece] > self.max_restarts:
                    raise
                self._restart(index)
                pending.insert(0, piece)
            give_work(index)
        return [(piece, *done[piece]) for piece in pieces]

    def _fan_out(self, method: str, samples: list, pieces: list[Piece], *args, call: int | None = None) -> list:
        """Run `pieces` of `samples` (`_run_pieces`); add their skipped samples (once per unit) and lost
        trajectories to `skipped` / `failed`; one `last_stats` entry per piece, with the worker that ran
        it. (piece, batch) in piece order."""
        ran = self._run_pieces(method, samples, pieces, args, call)
        self.last_stats, self.last_skipped, skipped_in_unit = [], {}, {}
        for piece, index, batch in ran:
            for sample_id, reason in batch.skipped.items():  # round-robin pieces of a unit share its samples
                skipped_in_unit[piece.unit, sample_id] = reason
            self.last_skipped.update(batch.skipped)
            self.failed.update(batch.failed)
            self.last_stats.append({**batch.stats, "worker": index})
        self.skipped.update(skipped_in_unit.values())
        return [(piece, batch) for piece, _, batch in ran]

    def generate(self, samples: list, n_per_sample: int, mode: str = "train") -> list:
        """`n_per_sample` trajectories per sample, in sample order. One worker runs the whole call; several
        share it in work units (`rollout.units_per_worker`, `min_unit_trajectories`, `routing`). Skipped
        samples and lost trajectories are added to `skipped` / `failed`."""
        pieces = plan(len(samples), n_per_sample, len(self.workers), self.cfg.units_per_worker, self.cfg.routing,
                      self.cfg.min_unit_trajectories)
        call = None  # one worker numbers its calls itself, exactly as before routing existed
        if len(self.workers) > 1:
            call, self.calls = self.calls, self.calls + 1
        ran = self._fan_out("generate", samples, pieces, n_per_sample, mode, call=call)
        return in_call_order((t.group_index, member, t) for _, batch in ran
                             for t, member in zip(batch.trajectories, batch.members, strict=True))

    def tts(self, samples: list, n: int, vote: str = "confidence") -> list:
        """Test-time scaling (`vo3rl.rollout.tts`): one `TTSResult` per sample that kept an answer,
        in sample order. One share per worker, as before units existed: a worker numbers its TTS calls
        itself, so more calls per worker would change their seeds with the load."""
        pieces = plan(len(samples), n, len(self.workers), units_per_engine=1)
        return [r for _, batch in self._fan_out("tts", samples, pieces, n, vote) for r in batch.results]

    def update_weights(self, state_dict: dict, version: int | None = None) -> None:
        """Send the learner's weights (one object in the store, read by every worker) in place, as
        `version` (default: one more than the last)."""
        self.weight_version = self.weight_version + 1 if version is None else int(version)
        self._weights = ray.put(state_dict)
        ray.get([w.update_weights.remote(self._weights, self.weight_version) for w in self.workers])

    def clear_caches(self) -> None:
        """Every worker forgets its prefix, encoder and multimodal caches (no weights change)."""
        ray.get([w.clear_caches.remote() for w in self.workers])

    def sleep(self) -> dict:
        """Every engine gives its device memory back (vLLM sleep `sleep_level`), all at once: `seconds`
        (the slowest), `freed_bytes` (summed over the engines), `available` (every engine had sleep
        mode). Where sleep mode is missing the reason is logged once per group."""
        figures = self._on_every_engine("sleep", self.sleep_level)
        if not figures["available"] and not self._sleep_reason_logged:
            log.warning("colocated rollout engines: %s", figures["reason"])
            self._sleep_reason_logged = True
        return figures

    def wake_up(self) -> dict:
        """Every engine takes its memory back; `freed_bytes` is then negative (what they took)."""
        return self._on_every_engine("wake_up")

    def _on_every_engine(self, method: str, *args) -> dict:
        if self.sleep_level is None:
            raise RuntimeError(f"{method}: these rollout engines were not started to sleep (sleep_level None)")
        answers = ray.get([getattr(w, method).remote(*args) for w in self.workers])
        return {"seconds": max(a["seconds"] for a in answers), "freed_bytes": sum(a["freed_bytes"] for a in answers),
                "available": all(a["available"] for a in answers),
                "reason": next((a["reason"] for a in answers if a["reason"]), "")}

    def weights_synced(self, version: int) -> None:
        """The engines hold weight `version`, sent some other way (the process-group sync): no object
        holds them, so a restarted worker asks `on_restart`."""
        self.weight_version = int(version)
        self._weights = None

    def ready(self, timeout_s: float = 60.0) -> list[dict]:
        """Every worker's health answer; raises GetTimeoutError when one does not answer in time."""
        return ray.get([w.ready.remote() for w in self.workers], timeout=timeout_s)

    def shutdown(self) -> None:
        for worker in self.workers:
            ray.kill(worker)
        self.workers = []
        if self.placement is not None and self._owns_placement:
            remove_placement_group(self.placement)
        self.placement = None
