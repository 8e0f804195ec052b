"""Weights as buckets: the plan, packing and unpacking behind `rl.weight_sync: process_group`.

A state dict travels as a few large flat buffers instead of one message per tensor: collectives pay a
fixed cost per call, and a 7B model has ~700 tensors. Each bucket holds tensors of one dtype, flattened
and laid end to end, at most `bucket_bytes` long; a tensor larger than that travels alone in a bucket of
its own size (splitting it would not save memory: the receiver needs it whole before loading it).
Tensors that share storage (a tied embedding and LM head) travel once and are named twice.

The plan is plain data (JSON), sent ahead of the buffers so that a receiver can allocate each bucket
and slice it back into named tensors. Pure torch: no process group, no Ray, no vLLM; the transport is
`vo3rl.rollout.weight_group`. Sizes are in elements unless a name says bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

import torch


@dataclass(frozen=True)
class Entry:
    """One tensor of a bucket: its name, shape, and where it lies in the flat buffer (elements)."""

    name: str
    shape: tuple[int, ...]
    offset: int
    numel: int


@dataclass(frozen=True)
class Bucket:
    """`numel` elements of `dtype` (a torch dtype's name, e.g. "float32") holding `entries` in order."""

    dtype: str
    numel: int
    entries: tuple[Entry, ...]

    @property
    def torch_dtype(self) -> torch.dtype:
        return dtype_of(self.dtype)

    @property
    def nbytes(self) -> int:
        return self.numel * self.torch_dtype.itemsize


@dataclass(frozen=True)
class Plan:
    """The buckets in sending order, and `aliases` (name -> the name whose tensor it shares)."""

    buckets: tuple[Bucket, ...]
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes on the wire (aliases cost nothing)."""
        return sum(b.nbytes for b in self.buckets)

    def names(self) -> list[str]:
        return [e.name for b in self.buckets for e in b.entries] + list(self.aliases)

    def to_json(self) -> str:
        return json.dumps({"buckets": [{"dtype": b.dtype, "numel": b.numel,
                                        "entries": [[e.name, list(e.shape), e.offset, e.numel] for e in b.entries]}
                                       for b in self.buckets], "aliases": self.aliases})

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        data = json.loads(text)
        buckets = tuple(Bucket(b["dtype"], int(b["numel"]),
                               tuple(Entry(n, tuple(int(s) for s in shape), int(o), int(k))
                                     for n, shape, o, k in b["entries"]))
                        for b in data["buckets"])
        return cls(buckets, dict(data["aliases"]))


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def dtype_of(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"not a torch dtype: {name!r}")
    return dtype


def _storage_key(tensor: torch.Tensor) -> tuple:
    """Equal for two tensors that are the same view of the same storage."""
    return (tensor.device.type, tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
            tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)


def plan_buckets(tensors: Mapping[str, torch.Tensor], bucket_bytes: int) -> Plan:
    """Buckets of at most `bucket_bytes` bytes (>= 1) for `tensors`, in their order: one bucket per dtype
    is open at a time and is closed when the next tensor of its dtype would overflow it. With one dtype
    (the usual fp32 or bf16 state dict) tensors travel in the state dict's order."""
    if bucket_bytes < 1:
        raise ValueError(f"bucket_bytes = {bucket_bytes}: must be >= 1")
    closed: list[Bucket] = []
    open_: dict[str, list[Entry]] = {}
    fill: dict[str, int] = {}
    seen: dict[tuple, str] = {}
    aliases: dict[str, str] = {}

    def close(dtype: str) -> None:
        entries = open_.pop(dtype)
        closed.append(Bucket(dtype, fill.pop(dtype), tuple(entries)))

    for name, tensor in tensors.items():
        key = _storage_key(tensor)
        if key in seen and tensor.numel():
            aliases[name] = seen[key]
            continue
        seen[key] = name
        dtype, numel = dtype_name(tensor.dtype), tensor.numel()
        if dtype in open_ and (fill[dtype] + numel) * tensor.element_size() > bucket_bytes:
            close(dtype)
        entries = open_.setdefault(dtype, [])
        offset = fill.get(dtype, 0)
        entries.append(Entry(name, tuple(tensor.shape), offset, numel))
        fill[dtype] = offset + numel
    for dtype in list(open_):
        close(dtype)
    return Plan(tuple(closed), aliases)


def pack(bucket: Bucket, tensors: Mapping[str, torch.Tensor], device: torch.device | str = "cpu") -> torch.Tensor:
    """The bucket's flat buffer (1-D, its dtype, on `device`) filled from `tensors`, bit for bit."""
    flat = torch.empty(bucket.numel, dtype=bucket.torch_dtype, device=device)
    for entry in bucket.entries:
        source = tensors[entry.name]
        if dtype_name(source.dtype) != bucket.dtype or source.numel() != entry.numel:
            raise ValueError(f"{entry.name}: {source.dtype} x {source.numel()} does not fit the plan's "
                             f"{bucket.dtype} x {entry.numel}")
        flat[entry.offset : entry.offset + entry.numel].copy_(source.reshape(-1))
    return flat


def unpack(bucket: Bucket, flat: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) for each entry of `bucket`: views into `flat` (no copy), so keep `flat` alive as
    long as the tensors are used and do not reuse it for the next bucket."""
    if flat.numel() != bucket.numel or dtype_name(flat.dtype) != bucket.dtype:
        raise ValueError(f"buffer {flat.dtype} x {flat.numel()} is not the bucket's {bucket.dtype} x {bucket.numel}")
    for entry in bucket.entries:
        yield entry.name, flat[entry.offset : entry.offset + entry.numel].view(entry.shape)


def with_aliases(plan: Plan, named: Iterable[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
    """`named` (the unpacked buckets), each alias yielded right after the tensor it shares."""
    by_source: dict[str, list[str]] = {}
    for alias, source in plan.aliases.items():
        by_source.setdefault(source, []).append(alias)
    for name, tensor in named:
        yield name, tensor
        for alias in by_source.get(name, ()):
            yield alias, tensor
