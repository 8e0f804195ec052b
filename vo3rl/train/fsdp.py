"""FSDP2 for the policy: one process group over the learner ranks, each decoder layer its own shard
group, the root holding embeddings, the vision tower, norm and (tied) head.

The vision tower stays in the root group on purpose: a rank whose micro-batch has no video does not
run it, and a separately sharded tower would then skip an all-gather the other ranks wait on. The root
is gathered once per forward call on every rank, whatever the batch holds. Ranks must make the same
number of forward calls per step (the learner pads with zero-loss calls).

Process group: gloo on CPU, NCCL on GPU ("auto"). Parameters stay fp32; with bf16 the compute runs in
bf16 and gradients are reduced in fp32 (MixedPrecisionPolicy).
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def resolve_backend(backend: str = "auto") -> str:
    if backend != "auto":
        return backend
    return "nccl" if torch.cuda.is_available() else "gloo"


def init_process_group(rank: int, world_size: int, master_addr: str, master_port: int, backend: str = "auto") -> None:
    """Join the learner group (idempotent). Sets the CUDA device to the local rank on GPU."""
    if dist.is_initialized():
        return
    backend = resolve_backend(backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)) % max(1, torch.cuda.device_count()))
    dist.init_process_group(backend, init_method=f"tcp://{master_addr}:{master_port}", rank=rank,
                            world_size=world_size)


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_sharded() -> bool:
    return dist.is_available() and dist.is_initialized()


def shard_policy(model, device_type: str, bf16: bool) -> None:
    """Apply `fully_shard` to a Qwen2.5-VL ForConditionalGeneration in place."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device_type, (dist.get_world_size(),))
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else None
    kwargs = {"mesh": mesh} | ({"mp_policy": policy} if policy is not None else {})
    for layer in model.model.language_model.layers:
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)


def full_state_dict(model) -> dict:
    """The unsharded state dict on CPU (a collective when sharded; every rank must call it). Rank 0
    gets the tensors; other ranks may get an empty dict."""
    if not is_sharded():
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_state_dict(model, state: dict) -> None:
    """Load an unsharded state dict (module key names) into the possibly sharded `model`."""
    if not is_sharded():
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embedding
        if missing or unexpected:
            raise ValueError(f"state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=False))


def max_over_ranks(value: int) -> int:
    """The largest `value` of any rank (the value itself without a process group)."""
    if not is_sharded():
        return value
    tensor = torch.tensor([value], dtype=torch.long)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())
