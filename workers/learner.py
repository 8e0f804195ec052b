"""Learner workers: one Ray actor per FSDP2 rank, placed by a placement group, the ranks forming one
process group (gloo on CPU, NCCL on GPU). Each actor hosts a `vo3rl.train.learner.Learner`; this file
only starts them and fans calls out.

    group = LearnerGroup(model_path, LearnerConfig(ranks=2), total_steps=100)
    metrics = group.train_step(trajectories, loss="sft")     # split over ranks, normalised globally
    logprobs, entropy = group.logprobs(trajectories)
    group.save_checkpoint("runs/x/step_100"); group.load_checkpoint("runs/x/step_100")
    weights = group.export_weights()                          # full state dict from rank 0
"""
from __future__ import annotations

import socket
from dataclasses import asdict
from typing import Sequence

import ray

from vo3rl.train.config import LearnerConfig


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@ray.remote
class LearnerWorker:
    """One rank. Methods mirror `Learner`; trajectories arrive as pickled `Trajectory` objects."""

    def __init__(self, rank: int, world_size: int, master_addr: str, master_port: int, model_path: str,
                 cfg: dict, total_steps: int, log_level: str = "INFO"):
        import os

        from vo3rl.log import setup_logging
        from vo3rl.train import fsdp
        from vo3rl.train.learner import Learner

        import vo3rl.rl.policy_loss  # noqa: F401  (RL's "policy" loss registers with the learner here)

        import torch

        setup_logging(log_level)
        # As many compute threads as CPUs this rank was given, so ranks do not oversubscribe the node.
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        torch.set_num_threads(max(1, int(cpus)))
        os.environ.setdefault("LOCAL_RANK", "0")  # Ray gives each GPU actor its own visible device
        config = LearnerConfig(**cfg)
        if world_size > 1:
            fsdp.init_process_group(rank, world_size, master_addr, master_port, config.backend)
        self.learner = Learner(model_path, config, total_steps)

    def node_ip(self) -> str:
        return ray.util.get_node_ip_address()

    def train_step(self, trajectories, global_tokens: int, loss: str, loss_on: str, use_tdam: bool,
                   extras: dict | None = None) -> dict:
        return self.learner.train_step(trajectories, global_tokens, loss, loss_on, use_tdam, extras)

    def logprobs(self, trajectories, with_entropy: bool, loss_on: str, use_tdam: bool):
        return self.learner.logprobs(trajectories, with_entropy, loss_on, use_tdam)

    def reset_schedule(self, total_steps: int, lr: float | None, warmup_ratio: float | None) -> None:
        self.learner.reset_schedule(total_steps, lr, warmup_ratio)

    def use_tdam(self, ratio: float | None) -> bool:
        return self.learner.use_tdam(ratio)

    def save_checkpoint(self, path: str, with_optimizer: bool, extra: dict | None) -> str:
        return str(self.learner.save_checkpoint(path, with_optimizer, extra))

    def load_checkpoint(self, path: str, with_optimizer: bool) -> dict:
        return self.learner.load_checkpoint(path, with_optimizer)

    def export_weights(self) -> dict:
        weights = self.learner.export_weights()
        return weights if self.learner.rank == 0 else {}

    def shutdown(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def split_for_ranks(items: Sequence, ranks: int, sizes: Sequence[int] | None = None) -> list[list]:
    """Deal `items` over ranks, balancing `sizes` (token counts): longest first, to the lightest rank."""
    sizes = list(sizes) if sizes is not None else [1] * len(items)
    shares: list[list] = [[] for _ in range(ranks)]
    loads = [0] * ranks
    for i in sorted(range(len(items)), key=lambda i: -sizes[i]):
        lightest = loads.index(min(loads))
        shares[lightest].append(items[i])
        loads[lightest] += sizes[i]
    return shares


class LearnerGroup:
    """The learner ranks of one run, in a placement group (one bundle per rank: `cpus_per_rank` CPUs,
    and a GPU each when `gpus_per_rank` > 0)."""

    def __init__(self, model_path: str, cfg: LearnerConfig, total_steps: int = 1, cpus_per_rank: float = 1,
                 gpus_per_rank: float = 0, log_level: str = "INFO"):
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        cfg.validate()
        self.cfg = cfg
        bundle = {"CPU": cpus_per_rank} | ({"GPU": gpus_per_rank} if gpus_per_rank else {})
        self.placement = placement_group([dict(bundle) for _ in range(cfg.ranks)], strategy="PACK")
        ray.get(self.placement.ready())
        port = _free_port()
        master = ray.util.get_node_ip_address()
        self.workers = [
            LearnerWorker.options(
                num_cpus=cpus_per_rank, num_gpus=gpus_per_rank,
                scheduling_strategy=PlacementGroupSchedulingStrategy(self.placement, placement_group_bundle_index=r),
            ).remote(r, cfg.ranks, master, port, str(model_path), asdict(cfg), total_steps, log_level)
            for r in range(cfg.ranks)
        ]
        ray.get([w.node_ip.remote() for w in self.workers])  # wait until every rank is up

    def _all(self, method: str, *args) -> list:
        return ray.get([getattr(w, method).remote(*args) for w in self.workers])

    def train_step(self, trajectories: list, loss: str = "sft", loss_on: str = "assistant",
                   use_tdam: bool = False, extras: dict | None = None) -> dict:
        """One optimizer step over the global batch `trajectories`. Returns the global mean loss and
        the ranks' summed token counts."""
        from vo3rl.train.batch import n_trained_tokens

        global_tokens = n_trained_tokens(trajectories, loss_on)
        shares = split_for_ranks(trajectories, len(self.workers), [len(t) for t in trajectories])
        results = ray.get([w.train_step.remote(share, global_tokens, loss, loss_on, use_tdam, extras)
                           for w, share in zip(self.workers, shares)])
        merged = dict(results[0])
        for key in {"loss", "tokens", "padded_tokens"} | {k for r in results for k in r if k.startswith("sum/")}:
            merged[key] = sum(r.get(key, 0.0) for r in results)
        merged["seconds"] = max(r["seconds"] for r in results)
        merged["trained_tokens"] = global_tokens
        return merged

    def logprobs(self, trajectories: list, with_entropy: bool = True, loss_on: str = "all", use_tdam: bool = False):
        """Per trajectory (input order) log-probs and entropies, as `Learner.logprobs`."""
        ranks = len(self.workers)
        index_shares = split_for_ranks(list(range(len(trajectories))), ranks, [len(t) for t in trajectories])
        results = ray.get([w.logprobs.remote([trajectories[i] for i in share], with_entropy, loss_on, use_tdam)
                           for w, share in zip(self.workers, index_shares)])
        logprobs, entropy = [None] * len(trajectories), [None] * len(trajectories)
        for share, (lp, ent) in zip(index_shares, results):
            for j, i in enumerate(share):
                logprobs[i] = lp[j]
                entropy[i] = ent[j] if ent is not None else None
        return logprobs, entropy if with_entropy else None

    def reset_schedule(self, total_steps: int, lr: float | None = None, warmup_ratio: float | None = None) -> None:
        self._all("reset_schedule", total_steps, lr, warmup_ratio)

    def use_tdam(self, ratio: float | None = None) -> bool:
        return self._all("use_tdam", ratio)[0]

    def save_checkpoint(self, path: str, with_optimizer: bool = True, extra: dict | None = None) -> str:
        return self._all("save_checkpoint", str(path), with_optimizer, extra)[0]

    def load_checkpoint(self, path: str, with_optimizer: bool = True) -> dict:
        return self._all("load_checkpoint", str(path), with_optimizer)[0]

    def export_weights(self) -> dict:
        return self._all("export_weights")[0]

    def shutdown(self) -> None:
        from ray.util.placement_group import remove_placement_group

        try:
            self._all("shutdown")
        finally:
            for worker in self.workers:
                ray.kill(worker)
            remove_placement_group(self.placement)
