"""megatron-core's parallel state for the learner ranks, and the collectives the Megatron learner makes
itself: gradients summed over data-parallel replicas, the global gradient norm, full tensors gathered
from a tensor-parallel group.

Gradients: ranks of one tensor-parallel group see the same batch, and without sequence parallelism
megatron's layers leave the replicated parameters (norms, the vision tower) with the same gradient on
each of them; the split parameters hold their own shard's. So only the data-parallel sum is left to do.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from vo3rl.train import fsdp
from vo3rl.train.megatron import cpu_patches
from vo3rl.train.megatron.layout import RankLayout
from vo3rl.train.megatron.weights import partition_dim, unshard

with warnings.catch_warnings():  # megatron warns on import that Apex / Transformer Engine are absent
    warnings.filterwarnings("ignore", message=".*(Apex|Transformer Engine).*not installed")
    from megatron.core import parallel_state, tensor_parallel


def join_single_process_group(dist_backend: str = "auto") -> bool:
    """A process group of this process alone when there is none (a one-rank learner in process):
    megatron's layers need one, even for their trivial collectives. True when it was created here."""
    if dist.is_initialized():
        return False
    dist.init_process_group(fsdp.resolve_backend(dist_backend), store=dist.HashStore(), rank=0, world_size=1)
    return True


def init_parallel_state(tp: int, seed: int) -> RankLayout:
    """Initialise megatron's model-parallel groups (tp ranks per group, no pipeline or context
    parallelism) over the current process group, and its dropout RNG; returns this rank's layout,
    checked against megatron's own ranks."""
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=tp, create_gloo_process_groups=False)
    layout = RankLayout(dist.get_rank(), dist.get_world_size(), tp)
    have = (parallel_state.get_tensor_model_parallel_rank(), parallel_state.get_data_parallel_rank())
    if have != (layout.tp_rank, layout.dp_rank):
        raise RuntimeError(f"megatron placed rank {layout.rank} at (tp, dp) = {have}, vo3rl expected "
                           f"{(layout.tp_rank, layout.dp_rank)}: the batch would be dealt to the wrong ranks")
    if cpu_patches.apply():
        # megatron's no-op tracker: its forks are null contexts (every dropout here has p = 0).
        tensor_parallel.random.initialize_rng_tracker(inference_rng_tracker=True, force_reset=True)
    else:
        tensor_parallel.model_parallel_cuda_manual_seed(seed)
    return layout


def destroy_parallel_state() -> None:
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()


def tensor_group():
    return parallel_state.get_tensor_model_parallel_group()


def data_group():
    return parallel_state.get_data_parallel_group()


def sum_gradients_over_replicas(params: list[torch.nn.Parameter]) -> None:
    """Sum each parameter's gradient over the data-parallel replicas (a missing gradient counts as
    zeros), in one flat all-reduce."""
    group = data_group()
    if dist.get_world_size(group) == 1 or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat, group=group)
    for param, summed in zip(params, _unflatten_dense_tensors(flat, grads)):
        param.grad = summed


def clip_gradients(named_params: list[tuple[str, torch.nn.Parameter]], max_norm: float) -> float:
    """Scale the gradients so that their global L2 norm is at most `max_norm` (inf: never) as
    `torch.nn.utils.clip_grad_norm_` does (coefficient max_norm / (norm + 1e-6), capped at 1); returns
    the norm before clipping. A split parameter's shards are summed over the tensor-parallel group, a
    replicated one counted once."""
    grads = [(name, p.grad) for name, p in named_params if p.grad is not None]
    device = grads[0][1].device if grads else torch.device("cpu")
    split = torch.zeros((), dtype=torch.float32, device=device)
    replicated = torch.zeros((), dtype=torch.float32, device=device)
    for name, grad in grads:
        square = grad.detach().float().pow(2).sum()
        if partition_dim(name) is None:
            replicated += square
        else:
            split += square
    if dist.get_world_size(tensor_group()) > 1:
        dist.all_reduce(split, group=tensor_group())
    norm = float(torch.sqrt(split + replicated))
    if math.isfinite(max_norm):
        coefficient = min(1.0, max_norm / (norm + 1e-6))
        for _, grad in grads:
            grad.mul_(coefficient)
    return norm


def gather_full_state(local: dict) -> dict:
    """The full Megatron state (every split tensor reassembled) from this rank's `local` state; a
    collective over the tensor-parallel group, every rank gets the result."""
    group = tensor_group()
    size = dist.get_world_size(group)
    if size == 1:
        return dict(local)
    shards = [dict() for _ in range(size)]
    for key, tensor in local.items():
        if partition_dim(key) is None:
            for part in shards:
                part[key] = tensor
            continue
        parts = [torch.empty_like(tensor) for _ in range(size)]
        dist.all_gather(parts, tensor.contiguous(), group=group)
        for part, value in zip(shards, parts):
            part[key] = value
    return unshard(shards)
