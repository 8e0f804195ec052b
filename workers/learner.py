"""Learner workers: one Ray actor per learner rank, placed by a placement group, the ranks forming one
process group (gloo on CPU, NCCL on GPU). Each actor hosts the learner `learner.backend` names
(`make_learner`: FSDP2's `vo3rl.train.learner.Learner` or megatron's `MegatronLearner`) and runs the
learner contract's methods on it (`LearnerWorker.call`); `LearnerGroup` is the contract for the whole
group: it splits a batch over the data-parallel replicas and merges their answers. Under Megatron's
tensor parallelism the ranks of one replica get the same share (`vo3rl.train.megatron.layout`).

    group = LearnerGroup(model_path, LearnerConfig(ranks=2), total_steps=100)
    metrics = group.train_step(trajectories, loss="sft")     # split over ranks, normalised globally
    logprobs, entropy = group.logprobs(trajectories)
    write_checkpoint(group, "runs/x/step_100", driver_state)  # any number of ranks may load it back
    group.load_checkpoint("runs/x/step_100")
    weights = group.export_weights()                          # full state dict from rank 0

Rank 0 also hosts the weight-sync process group of `rl.weight_sync: process_group`
(`open_weight_sync`, `join_weight_sync`, `send_weights`: driven by `vo3rl.workers.weight_sync`).
"""
from __future__ import annotations

import os
import socket
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import ray
import torch
import torch.distributed as dist
from ray.util.placement_group import remove_placement_group

from vo3rl.config.learner import LearnerConfig
from vo3rl.log import setup_logging
from vo3rl.rl.policy_loss import register_rl_losses
from vo3rl.train import fsdp
from vo3rl.train.batch import n_trained_tokens
from vo3rl.train.contract import CONTRACT_METHODS
from vo3rl.train.losses import LossInputs
from vo3rl.train.megatron import layout
from vo3rl.workers.placement import in_bundle, place


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@ray.remote
class LearnerWorker:
    """One rank. `call(method, ...)` runs a learner-contract method on this rank's `Learner`;
    trajectories arrive as pickled `Trajectory` objects."""

    def __init__(self, rank: int, world_size: int, master_addr: str, master_port: int, model_path: str,
                 cfg: dict, total_steps: int, log_level: str = "INFO"):
        setup_logging(log_level)
        # As many compute threads as CPUs this rank was given, so ranks do not oversubscribe the node.
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        torch.set_num_threads(max(1, int(cpus)))
        os.environ.setdefault("LOCAL_RANK", "0")  # Ray gives each GPU actor its own visible device
        config = LearnerConfig(**cfg)
        if world_size > 1:
            fsdp.init_process_group(rank, world_size, master_addr, master_port, config.dist_backend)
        register_rl_losses()  # the RL stage's "policy" loss, for train_step(loss="policy")
        self.learner = make_learner(model_path, config, total_steps)

    def node_ip(self) -> str:
        return ray.util.get_node_ip_address()

    def call(self, method: str, *args, **kwargs) -> Any:
        """`self.learner.<method>(*args, **kwargs)` for a method of the learner contract."""
        if method not in CONTRACT_METHODS:
            raise AttributeError(f"{method!r} is not a learner contract method; known: {', '.join(CONTRACT_METHODS)}")
        return getattr(self.learner, method)(*args, **kwargs)

    # -- the weight-sync group (rank 0 is its rank 0; `vo3rl.rollout.weight_group`) ---------------
    def open_weight_sync(self, world_size: int, timeout_s: float) -> tuple[str, int]:
        """Start the group's store on this node (rank 0 only); its address for the engines."""
        from vo3rl.rollout.weight_group import open_store

        self.leave_weight_sync()
        host = ray.util.get_node_ip_address()
        self._sync_store = open_store(host, world_size, timeout_s)
        self._sync_args = (world_size, timeout_s)
        return host, int(self._sync_store.port)

    def join_weight_sync(self, backend: str) -> None:
        """Join as group rank 0; blocks until every engine worker has joined."""
        from vo3rl.rollout.weight_group import WeightGroup

        world_size, timeout_s = self._sync_args
        self._sync_group = WeightGroup(0, world_size, backend, timeout_s, store=self._sync_store)

    def send_weights(self, bucket_bytes: int) -> dict:
        """Gather the full weights (a collective: every rank calls this) and broadcast them from rank 0
        in buckets of at most `bucket_bytes`; the send's figures (`weight_group.send_weights`, plus
        `export_s`: the gather's seconds), empty on the other ranks."""
        import time

        from vo3rl.rollout.weight_group import send_weights

        start = time.perf_counter()
        weights = self.learner.export_weights()
        if self.learner.rank != 0:
            return {}
        export_s = time.perf_counter() - start
        return send_weights(self._sync_group, weights, bucket_bytes) | {"export_s": export_s}

    def leave_weight_sync(self) -> None:
        group = getattr(self, "_sync_group", None)
        if group is not None:
            group.close()
        self._sync_group = None
        self._sync_store = None

    def shutdown(self) -> None:
        """Shut the learner down and leave the process groups this actor joined."""
        self.leave_weight_sync()
        self.learner.shutdown()
        if dist.is_initialized():
            dist.destroy_process_group()


def make_learner(model_path: str | Path, cfg: LearnerConfig, total_steps: int = 1, tokenizer=None):
    """The learner of one rank (or of a one-rank run, in process) that `cfg.backend` names. Its model
    code (transformers, megatron-core) is imported here, in the process that hosts it."""
    if cfg.backend == "megatron":
        check_model_degrees(model_path, cfg)
        from vo3rl.train.megatron.learner import MegatronLearner

        return MegatronLearner(model_path, cfg, total_steps, tokenizer)
    from vo3rl.train.learner import Learner

    return Learner(model_path, cfg, total_steps, tokenizer)


def check_model_degrees(model_path: str | Path, cfg: LearnerConfig) -> None:
    """Raise ValueError (one line) when the Megatron degrees cannot split the model of `model_path`."""
    problem = layout.model_degree_problem(model_path, cfg.megatron.tensor_parallel) if cfg.backend == "megatron" else None
    if problem:
        raise ValueError(problem)


def replica_of_ranks(cfg: LearnerConfig) -> list[int]:
    """The data-parallel replica (batch share) of each learner rank: its own under FSDP2; under
    Megatron, the tensor-parallel ranks of a replica share one."""
    tp = cfg.megatron.tensor_parallel if cfg.backend == "megatron" else 1
    return layout.replica_of_ranks(cfg.ranks, tp)


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
    and a GPU each when `gpus_per_rank` > 0). Implements `vo3rl.train.contract.PolicyLearner`:
    `train_step` and `logprobs` split the batch over the ranks (balanced by tokens) and merge; every
    other method runs on all ranks (they are collectives) and returns rank 0's answer."""

    def __init__(self, model_path: str, cfg: LearnerConfig, total_steps: int = 1, cpus_per_rank: float = 1,
                 gpus_per_rank: float = 0, log_level: str = "INFO", placement_timeout_s: float = 600.0):
        cfg.validate()
        check_model_degrees(model_path, cfg)  # before any rank is placed
        self.cfg = cfg
        bundle = {"CPU": cpus_per_rank} | ({"GPU": gpus_per_rank} if gpus_per_rank else {})
        self.placement = place("learner", cfg.ranks, bundle, placement_timeout_s,
                               "Lower learner.ranks or rl.learner_gpus / sft.learner_gpus")
        port = _free_port()
        master = ray.util.get_node_ip_address()
        self.workers = [
            LearnerWorker.options(
                num_cpus=cpus_per_rank, num_gpus=gpus_per_rank,
                scheduling_strategy=in_bundle(self.placement, r),
            ).remote(r, cfg.ranks, master, port, str(model_path), asdict(cfg), total_steps, log_level)
            for r in range(cfg.ranks)
        ]
        self.replicas = replica_of_ranks(cfg)
        # Calls on all ranks are issued under this lock, so that every rank queues them in the same order
        # even when two driver threads call (a collective issued in different orders would deadlock).
        self._issue = threading.Lock()
        ray.get([w.node_ip.remote() for w in self.workers])  # wait until every rank is up

    def _on_all_ranks(self, method: str, *args, **kwargs) -> Any:
        """Run the contract's `method` with the same arguments on every rank; rank 0's answer."""
        with self._issue:
            refs = [w.call.remote(method, *args, **kwargs) for w in self.workers]
        return ray.get(refs)[0]

    def on_all_ranks_async(self, method: str, *args) -> list:
        """Object refs of actor `method(*args)` on every rank (e.g. `send_weights`), issued in order."""
        with self._issue:
            return [getattr(w, method).remote(*args) for w in self.workers]

    def _shares(self, trajectories: list) -> list[list[int]]:
        """Indices of `trajectories` for each rank: one share per data-parallel replica, balanced by
        length in tokens, given to each rank of that replica."""
        shares = split_for_ranks(list(range(len(trajectories))), max(self.replicas) + 1, [len(t) for t in trajectories])
        return [shares[replica] for replica in self.replicas]

    def _leaders(self, results: list) -> list:
        """The answers of one rank per replica (the others repeat them)."""
        first_rank = {replica: rank for rank, replica in reversed(list(enumerate(self.replicas)))}
        return [results[rank] for rank in sorted(first_rank.values())]

    def train_step(self, trajectories: list, loss: str = "sft", loss_on: str = "assistant",
                   use_tdam: bool = False, inputs: LossInputs | None = None) -> dict:
        """One optimizer step over the global batch `trajectories` (see `PolicyLearner.train_step`); each
        rank gets its share and `inputs.select(its indices)`. Returns the global mean loss, the ranks'
        summed token counts and loss sums, the slowest rank's seconds, rank 0's other metrics."""
        global_tokens = n_trained_tokens(trajectories, loss_on)
        shares = self._shares(trajectories)
        with self._issue:
            refs = [w.call.remote("train_step", [trajectories[i] for i in share], loss, loss_on, use_tdam,
                                  inputs.select(share) if inputs is not None else None, global_tokens=global_tokens)
                    for w, share in zip(self.workers, shares)]
        results = self._leaders(ray.get(refs))
        merged = dict(results[0])
        for key in {"loss", "tokens", "padded_tokens"} | {k for r in results for k in r if k.startswith("sum/")}:
            merged[key] = sum(r.get(key, 0.0) for r in results)
        merged["seconds"] = max(r["seconds"] for r in results)
        merged["trained_tokens"] = global_tokens
        return merged

    def logprobs(self, trajectories: list, with_entropy: bool = True, loss_on: str = "all",
                 use_tdam: bool = False) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """Per trajectory (input order) log-probs and entropies, as `Learner.logprobs`."""
        shares = self._shares(trajectories)
        with self._issue:
            refs = [w.call.remote("logprobs", [trajectories[i] for i in share], with_entropy, loss_on, use_tdam)
                    for w, share in zip(self.workers, shares)]
        results = ray.get(refs)
        logprobs, entropy = [None] * len(trajectories), [None] * len(trajectories)
        for share, (lp, ent) in zip(self._leaders(shares), self._leaders(results)):
            for j, i in enumerate(share):
                logprobs[i] = lp[j]
                entropy[i] = ent[j] if ent is not None else None
        return logprobs, entropy if with_entropy else None

    def reset_schedule(self, total_steps: int, lr: float | None = None, warmup_ratio: float | None = None) -> None:
        self._on_all_ranks("reset_schedule", total_steps, lr, warmup_ratio)

    def use_tdam(self, ratio: float | None = None) -> bool:
        return self._on_all_ranks("use_tdam", ratio)

    def save_checkpoint(self, path: str | Path, with_optimizer: bool = True, extra: dict | None = None) -> str:
        return self._on_all_ranks("save_checkpoint", str(path), with_optimizer, extra)

    def load_checkpoint(self, path: str | Path, with_optimizer: bool = True) -> dict:
        return self._on_all_ranks("load_checkpoint", str(path), with_optimizer)

    def export_weights(self) -> dict:
        return self._on_all_ranks("export_weights")

    def shutdown(self) -> None:
        """Stop every rank (leaving the process group), then free their placement."""
        try:
            with self._issue:
                refs = [w.shutdown.remote() for w in self.workers]
            ray.get(refs)
        finally:
            self.kill()

    def kill(self) -> None:
        """Kill every rank and free their placement without waiting on any: after a lost rank its peers
        may hang in a collective, so asking them to shut down could wait forever."""
        for worker in self.workers:
            ray.kill(worker)
        self.workers = []
        if self.placement is not None:
            remove_placement_group(self.placement)
            self.placement = None
