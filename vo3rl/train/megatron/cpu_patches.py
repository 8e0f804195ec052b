"""megatron-core 0.16.1 on a machine without CUDA: the places our forward reaches that allocate on
`torch.cuda.current_device()`, made to allocate on the CPU. Applied once, at import, only when torch
has no CUDA (on a GPU nothing here changes megatron).

1. `utils.GlobalMemoryBuffer.get_tensor`: the scratch tensor `DotProductAttention` feeds `baddbmm`
   (with beta = 0, so its contents never matter) is allocated on the CUDA device.
2. `MultimodalRotaryEmbedding.__init__`: MRoPE's inverse frequencies are built on the CUDA device.
3. `tensor_parallel.mappings._gather_along_last_dim`: with tensor parallelism > 1, the head's logits
   are gathered into a buffer on the CUDA device.

Each is wrapped so that, while it runs, `torch.cuda.current_device()` answers "cpu" (a device torch
accepts wherever megatron passes it). Not thread-safe by design: the learner runs its forward on one
thread. megatron's dropout RNG tracker (another CUDA user) is not patched: `parallel.init_parallel_state`
installs megatron's own no-op tracker on CPU, and every dropout of this model has p = 0.
"""
from __future__ import annotations

import contextlib
import functools

import torch
from megatron.core.models.common.embeddings.rotary_pos_embedding import MultimodalRotaryEmbedding
from megatron.core.tensor_parallel import mappings
from megatron.core.utils import GlobalMemoryBuffer

_PATCHED = ((GlobalMemoryBuffer, "get_tensor"), (MultimodalRotaryEmbedding, "__init__"),
            (mappings, "_gather_along_last_dim"))


@contextlib.contextmanager
def _cuda_device_is_cpu():
    current = torch.cuda.current_device
    torch.cuda.current_device = lambda: "cpu"
    try:
        yield
    finally:
        torch.cuda.current_device = current


def _on_cpu(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with _cuda_device_is_cpu():
            return function(*args, **kwargs)

    wrapper.vo3rl_on_cpu = True
    return wrapper


def apply() -> bool:
    """Patch the methods above when torch has no CUDA (idempotent); True when they are patched."""
    if torch.cuda.is_available():
        return False
    for owner, name in _PATCHED:
        method = getattr(owner, name)
        if not getattr(method, "vo3rl_on_cpu", False):
            setattr(owner, name, _on_cpu(method))
    return True


apply()
