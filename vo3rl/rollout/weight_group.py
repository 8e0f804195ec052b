"""The weight-sync process group of `rl.weight_sync: process_group`: learner rank 0 (group rank 0) and
every vLLM worker process of every rollout engine (ranks 1..), joined over a TCPStore that rank 0 hosts.

The group is built directly from torch's backend classes (`ProcessGroupGloo` / `ProcessGroupNCCL` on a
`PrefixStore`), not with `init_process_group`: the learner ranks already own the default group (FSDP),
vLLM owns its workers' groups, and this one must clash with neither. Collectives are called on the
backend object itself with group ranks, so no global rank mapping is needed.

One sync: rank 0 broadcasts a header (the plan's JSON length), the plan (`vo3rl.rollout.weight_buckets`)
and then each bucket as raw bytes (a uint8 view: exact for every dtype, whatever the backend supports);
receivers allocate each bucket, receive it, and hand its tensors to vLLM's in-place reload as they arrive,
so a receiver holds about one bucket beyond the model itself.

`WeightSyncExtension` is the vLLM `worker_extension_cls` (`vo3rl.rollout.vllm_engine` sets it): its
methods run on each engine worker through `collective_rpc`, in the worker's own process (the rollout
actor's when the engine is in-process, a vLLM worker process per tensor-parallel rank otherwise).
"""
from __future__ import annotations

import datetime
import hashlib
import time
from typing import Iterator, Mapping

import torch
import torch.distributed as dist

from vo3rl.rollout.weight_buckets import Plan, pack, plan_buckets, unpack, with_aliases

STORE_PREFIX = "vo3rl-weight-sync"


def open_store(host: str, world_size: int, timeout_s: float) -> dist.TCPStore:
    """Rank 0's store server on a free port of `host` (read it back as `store.port`)."""
    return dist.TCPStore(host, 0, world_size, is_master=True, wait_for_workers=False,
                         timeout=datetime.timedelta(seconds=timeout_s))


class WeightGroup:
    """One member of the weight-sync group. Joining blocks until all `world_size` members have joined.
    `store`: rank 0's server store, else None (a client connects to `host:port`). `backend`: gloo
    (tensors on CPU) or nccl (tensors on the current CUDA device)."""

    def __init__(self, rank: int, world_size: int, backend: str, timeout_s: float, store=None,
                 host: str = "", port: int = 0):
        timeout = datetime.timedelta(seconds=timeout_s)
        if store is None:
            store = dist.TCPStore(host, port, world_size, is_master=False, timeout=timeout)
        self._store = store  # the server must outlive the group on rank 0
        prefixed = dist.PrefixStore(STORE_PREFIX, store)
        self.rank, self.world_size, self.backend = rank, world_size, backend
        if backend == "gloo":
            self.device = torch.device("cpu")
            self.pg = dist.ProcessGroupGloo(prefixed, rank, world_size, timeout)
        elif backend == "nccl":
            self.device = torch.device("cuda", torch.cuda.current_device())
            options = dist.ProcessGroupNCCL.Options()
            options._timeout = timeout
            self.pg = dist.ProcessGroupNCCL(prefixed, rank, world_size, options)
        else:
            raise ValueError(f"weight-sync backend {backend!r}: gloo or nccl")
        self.broadcast(torch.zeros(1, dtype=torch.uint8, device=self.device))  # every member is connected

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` from rank 0 to everyone, in place (as raw bytes)."""
        options = dist.BroadcastOptions()
        options.rootRank = 0
        flat = tensor.reshape(-1)
        self.pg.broadcast([flat.view(torch.uint8) if flat.dtype != torch.uint8 else flat], options).wait()
        if self.backend == "nccl":
            torch.cuda.current_stream().synchronize()
        return tensor

    def close(self) -> None:
        shutdown = getattr(self.pg, "shutdown", None)
        if shutdown is not None:
            shutdown()
        self.pg = None


def send_weights(group: WeightGroup, tensors: Mapping[str, torch.Tensor], bucket_bytes: int) -> dict:
    """Broadcast `tensors` (rank 0) in buckets of at most `bucket_bytes`; the plan's figures: `bytes`
    on the wire, `buckets`, `tensors`, and `seconds` (wall, from planning to the last bucket)."""
    start = time.perf_counter()
    plan = plan_buckets(tensors, bucket_bytes)
    text = plan.to_json().encode()
    group.broadcast(torch.tensor([len(text)], dtype=torch.int64, device=group.device))
    group.broadcast(torch.frombuffer(bytearray(text), dtype=torch.uint8).to(group.device))
    for bucket in plan.buckets:
        group.broadcast(pack(bucket, tensors, group.device))
    return {"bytes": plan.nbytes, "buckets": len(plan.buckets), "tensors": len(plan.names()),
            "seconds": time.perf_counter() - start}


class Receiver:
    """A receiving member's side of one sync: iterate it for (name, tensor) as the buckets arrive.
    `drain()` receives whatever was not iterated (after a loader error), so the group stays in step
    with rank 0 and the next sync starts clean."""

    def __init__(self, group: WeightGroup):
        self.group = group
        header = group.broadcast(torch.zeros(1, dtype=torch.int64, device=group.device))
        text = group.broadcast(torch.empty(int(header.item()), dtype=torch.uint8, device=group.device))
        self.plan = Plan.from_json(bytes(text.cpu().numpy()).decode())
        self._next = 0
        self.bytes = 0

    def _buckets(self) -> Iterator[tuple[str, torch.Tensor]]:
        while self._next < len(self.plan.buckets):
            bucket = self.plan.buckets[self._next]
            self._next += 1
            flat = self.group.broadcast(torch.empty(bucket.numel, dtype=bucket.torch_dtype, device=self.group.device))
            self.bytes += bucket.nbytes
            yield from unpack(bucket, flat)

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        return with_aliases(self.plan, self._buckets())

    def drain(self) -> None:
        for _ in self._buckets():
            pass


def receive_all(group: WeightGroup) -> dict[str, torch.Tensor]:
    """Every tensor of one sync, as a dict (tests, and loaders that want them all at once)."""
    return dict(iter(Receiver(group)))


def tensor_digest(tensor: torch.Tensor) -> str:
    """SHA-256 of the tensor's dtype, shape and bytes: equal digests, bit-identical tensors."""
    data = tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()
    return hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode() + data).hexdigest()


class WeightSyncExtension:
    """Mixed into vLLM's worker class (`worker_extension_cls`); called through `collective_rpc`. The
    `vo3rl_` prefix keeps the names clear of the worker's own (vLLM refuses a clash)."""

    def vo3rl_join_weight_sync(self, host: str, port: int, first_rank: int, world_size: int, backend: str,
                               timeout_s: float) -> int:
        """Join as group rank `first_rank` + this worker's rank in the engine; returns that rank."""
        self.vo3rl_leave_weight_sync()
        rank = first_rank + int(getattr(self, "rank", 0))
        self._vo3rl_group = WeightGroup(rank, world_size, backend, timeout_s, host=host, port=port)
        return rank

    def vo3rl_receive_weights(self) -> int:
        """Receive one sync and load it in place (vLLM's layer-wise reload, as the object-store path
        does); returns the bytes received."""
        group = getattr(self, "_vo3rl_group", None)
        if group is None:
            raise RuntimeError("this engine worker has not joined a weight-sync group")
        receiver = Receiver(group)
        try:
            self.reload_weights(weights_iterator=iter(receiver), is_checkpoint_format=True)
        finally:
            receiver.drain()
        return receiver.bytes

    def vo3rl_leave_weight_sync(self) -> None:
        group = getattr(self, "_vo3rl_group", None)
        if group is not None:
            group.close()
        self._vo3rl_group = None

    def vo3rl_weights_digest(self) -> dict[str, str]:
        """{parameter or buffer name: `tensor_digest`} of the loaded model, in vLLM's own layout."""
        model = self.get_model()
        named = list(model.named_parameters()) + list(model.named_buffers())
        return {name: tensor_digest(tensor) for name, tensor in named}
