"""Reward workers: a pool of Ray actors scoring trajectories as their rollouts finish.

Scoring is pure (`vo3rl.rl.scoring`); the actors exist to take it off the driver and to bound the
concurrency of the optional LLM judge (each actor runs `judge_concurrency` calls at once).

    pool = RewardPool(RewardConfig(...), n_workers=2)
    pending = pool.submit(trajectories, samples, progress=0.3)   # returns at once
    results = pool.collect(pending)                              # RewardResult per trajectory, in order
"""
from __future__ import annotations

from dataclasses import asdict

import ray

from vo3rl.rewards import RewardConfig


@ray.remote(num_cpus=0)  # scoring takes microseconds and a judge call waits on HTTP: no CPU reserved
class RewardWorker:
    def __init__(self, cfg: dict, log_level: str = "INFO"):
        from vo3rl.config.reward import JudgeConfig
        from vo3rl.log import setup_logging

        setup_logging(log_level)
        judge = JudgeConfig(**cfg.pop("judge", {}))
        self.cfg = RewardConfig(**cfg, judge=judge)

    def score(self, trajectories: list, samples: list, progress: float) -> list:
        from vo3rl.rl.scoring import score_trajectory

        return [score_trajectory(t, s, self.cfg, progress) for t, s in zip(trajectories, samples)]


class RewardPool:
    def __init__(self, cfg: RewardConfig, n_workers: int = 1, judge_concurrency: int = 4, log_level: str = "INFO"):
        cfg.validate()
        self.cfg = cfg  # read by evaluations that score in the driver (V-STAR's chains)
        concurrency = judge_concurrency if cfg.judge.enabled else 1
        self.workers = [RewardWorker.options(max_concurrency=concurrency).remote(asdict(cfg), log_level)
                        for _ in range(max(1, n_workers))]
        self._next = 0

    def submit(self, trajectories: list, samples: list, progress: float, chunk: int = 16) -> list:
        """Send `trajectories` (with their `samples`) out in chunks, round-robin; returns the futures."""
        futures = []
        for start in range(0, len(trajectories), chunk):
            worker = self.workers[self._next % len(self.workers)]
            self._next += 1
            futures.append(worker.score.remote(trajectories[start:start + chunk], samples[start:start + chunk], progress))
        return futures

    @staticmethod
    def collect(futures: list) -> list:
        return [result for part in ray.get(futures) for result in part]

    def score(self, trajectories: list, samples: list, progress: float) -> list:
        return self.collect(self.submit(trajectories, samples, progress))

    def shutdown(self) -> None:
        for worker in self.workers:
            ray.kill(worker)
        self.workers = []
