"""vLLM's sleep mode for colocated engines (`placement.layout: colocated`): whether this platform has it,
and what one sleep or wake-up released or took back, measured on the device.

vLLM builds a sleep-capable engine only where its platform says so (`enable_sleep_mode` on CUDA, ROCm,
XPU: its cumem allocator tags the weights and the KV cache so they can be freed and mapped again); on
others (the CPU platform) asking for it fails at start. There the engine is built without it, its
`sleep` / `wake_up` still pause and resume its scheduler (its CPU worker ignores the memory part), and
the figures say 0 bytes with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass


def sleep_mode_support() -> tuple[bool, str]:
    """(available, why not): vLLM's `current_platform.is_sleep_mode_available()`, and a one-line reason
    when it is False."""
    from vllm.platforms import current_platform

    if current_platform.is_sleep_mode_available():
        return True, ""
    name = getattr(current_platform, "device_name", None) or type(current_platform).__name__
    return False, (f"vLLM's {name} platform has no sleep mode (current_platform.is_sleep_mode_available() is "
                   "False): colocated engines keep their memory during the update")


def free_device_bytes() -> int | None:
    """Free memory of this process's current CUDA device in bytes (device-wide, every process's
    allocations counted), None without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    return int(torch.cuda.mem_get_info()[0])


@dataclass
class SleepFigures:
    """One engine's sleep or wake-up: `seconds` (wall), `freed_bytes` (device memory that became free:
    positive after a sleep, negative after a wake-up; 0 without a GPU or without sleep mode),
    `available` (vLLM's sleep mode was on), `reason` (why not, else "")."""

    seconds: float
    freed_bytes: int
    available: bool
    reason: str = ""

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "freed_bytes": self.freed_bytes, "available": self.available,
                "reason": self.reason}


def freed_between(before: int | None, after: int | None) -> int:
    """Bytes that became free between two `free_device_bytes` readings (0 when either is None)."""
    return after - before if before is not None and after is not None else 0
