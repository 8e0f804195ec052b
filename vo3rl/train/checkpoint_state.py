"""Optimizer state in a checkpoint, stored so that nothing is unpickled on load and any number of
ranks can read it back.

Tensors (Adam's moments and step counts; the fp32 master weights when the HF copy is not fp32) go
through `torch.distributed.checkpoint` (DCP): each rank writes its own shards, keyed by parameter name,
and DCP's metadata records the global shapes, so 2 FSDP2 ranks can save and 1 (or 4) load. The
optimizer's hyperparameters (param groups) are returned as JSON for trainer_state.json; DCP never sees
a non-tensor value.

DCP in torch 2.13 reads its `.metadata` file with `pickle.load`, and loads any non-tensor item with
an unrestricted `torch.load`; both run code from the file. So this module never lets DCP read
metadata itself: it checks the file's sha256 against the one recorded when it was written, unpickles it
with an allow-list of DCP's own metadata classes, refuses any non-tensor item and any storage path
outside the folder, and hands DCP the parsed result. Tensor data DCP loads with `weights_only=True`.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import pickle
import warnings
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, Metadata, StorageMeta
from torch.distributed.checkpoint.state_dict import (
    get_state_dict,
    set_optimizer_state_dict,
    set_state_dict,
)

from vo3rl.train.checkpoint import CheckpointError

METADATA_FILE = ".metadata"  # DCP's name for the global metadata
_METADATA_CLASSES = {
    ("torch.distributed.checkpoint.metadata", name)
    for name in ("Metadata", "TensorStorageMetadata", "BytesStorageMetadata", "TensorProperties",
                 "ChunkStorageMetadata", "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING")
} | {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),  # maps a layout's name ("torch.strided") to the layout
    ("pathlib", "PosixPath"),
    ("collections", "OrderedDict"),
}


def save_optimizer_state(folder: str | Path, model, optimizer, with_model: bool) -> dict:
    """Write this rank's optimizer tensors (and, `with_model`, the model's) into `folder` with DCP.
    Collective: every rank calls it. Returns {"metadata_sha256", "param_groups", "fresh"} (JSON) to
    record with the checkpoint; the hash is only read on rank 0 (the others may get None)."""
    fresh = not optimizer.state  # no step taken yet: DCP fills the state in with a zero-lr step
    model_state, optim_state = get_state_dict(model, optimizer)
    tensors = {"optimizer": optim_state["state"]} | ({"model": model_state} if with_model else {})
    digest = save_tensors(folder, tensors, collective=_distributed())
    if fresh:  # the next real step must still be Adam's first (its bias correction is step 1's)
        optimizer.state.clear()
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
              for group in optim_state["param_groups"]]
    return {"metadata_sha256": digest, "param_groups": groups, "fresh": fresh}


def load_optimizer_state(folder: str | Path, model, optimizer, saved: dict, with_model: bool) -> None:
    """Restore the optimizer (and, `with_model`, the model's weights) from `folder`, whatever number
    of ranks wrote it. `saved` is what `save_optimizer_state` returned. Collective. Raises
    CheckpointError on a metadata file that is not the one recorded, or that holds anything but
    tensor entries of this folder."""
    metadata = read_metadata(folder, saved.get("metadata_sha256"))
    model_state, optim_state = get_state_dict(model, optimizer)
    groups = _restored_groups(saved.get("param_groups") or [], optim_state["param_groups"], folder)
    wanted = {"optimizer": optim_state["state"]} | ({"model": model_state} if with_model else {})
    load_tensors(folder, wanted, metadata, collective=_distributed())
    optim_state = {"state": wanted["optimizer"], "param_groups": groups}
    if with_model:
        set_state_dict(model, optimizer, model_state_dict=wanted["model"], optim_state_dict=optim_state)
    else:
        set_optimizer_state_dict(model, optimizer, optim_state)
    if saved.get("fresh"):
        optimizer.state.clear()


def save_tensors(folder: str | Path, tensors: dict, collective: bool) -> str | None:
    """Write the nested dict `tensors` (tensors only, else TypeError) into `folder` with DCP. With
    `collective` every rank of the process group calls this and writes its own shards; without, this
    process writes everything alone. Returns the sha256 of DCP's metadata file to record with the
    checkpoint (None on a rank that does not see the file)."""
    _require_tensors(tensors, "")
    with _single_process_quiet():
        dcp.save(tensors, checkpoint_id=str(folder), no_dist=not collective)
    metadata = Path(folder) / METADATA_FILE
    return _sha256(metadata.read_bytes()) if metadata.is_file() else None


def load_tensors(folder: str | Path, wanted: dict, metadata: Metadata, collective: bool) -> None:
    """Fill the tensors of the nested dict `wanted` in place from `folder`, whose `metadata` was read
    (and checked) by `read_metadata`; `collective` as in `save_tensors`. Raises CheckpointError when
    the folder's tensors do not fit `wanted`."""
    try:
        with _single_process_quiet():
            dcp.load(wanted, storage_reader=_ParsedReader(folder, metadata), no_dist=not collective)
    except Exception as exc:  # DCP wraps each rank's error; name the checkpoint
        raise CheckpointError(f"optimizer state in {folder} does not fit this learner: {exc}") from exc


def read_metadata(folder: str | Path, expected_sha256: str | None) -> Metadata:
    """DCP's metadata of `folder`, read without running code from it (see the module docstring)."""
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint optimizer state {folder} has no {METADATA_FILE}")
    data = path.read_bytes()
    if not expected_sha256 or _sha256(data) != expected_sha256:
        raise CheckpointError(f"{path} is not the file this checkpoint was written with (sha256 differs "
                              "from the one in its marker); refusing to read it")
    metadata = _MetadataUnpickler(io.BytesIO(data)).load()
    if not isinstance(metadata, Metadata):
        raise CheckpointError(f"{path} holds a {type(metadata).__name__}, not DCP metadata")
    for key, entry in metadata.state_dict_metadata.items():
        if isinstance(entry, BytesStorageMetadata):
            raise CheckpointError(f"{path}: entry {key!r} is not a tensor (vo3rl saves tensors only); refusing it")
    for info in (metadata.storage_data or {}).values():
        name = getattr(info, "relative_path", "")
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise CheckpointError(f"{path} points at a file outside its folder ({name!r}); refusing it")
    return metadata


class _MetadataUnpickler(pickle.Unpickler):
    """Unpickles DCP metadata and nothing else: a global outside DCP's metadata classes, torch.Size
    and torch dtypes is refused before it can be called."""

    def find_class(self, module: str, name: str):
        is_dtype = module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)
        if (module, name) in _METADATA_CLASSES or is_dtype:
            return super().find_class(module, name)
        raise CheckpointError(f"optimizer metadata refers to {module}.{name}, which DCP metadata never holds; "
                              "refusing to load it")


class _ParsedReader(FileSystemReader):
    """DCP's file reader, handed metadata already checked by `read_metadata` instead of unpickling it."""

    def __init__(self, folder: str | Path, metadata: Metadata):
        super().__init__(str(folder))
        self._metadata = metadata

    def read_metadata(self, *args, **kwargs) -> Metadata:
        if self._metadata.storage_meta is None:
            self._metadata.storage_meta = StorageMeta()
        self._metadata.storage_meta.load_id = self.load_id
        return self._metadata


def _restored_groups(saved: list[dict], current: list[dict], folder) -> list[dict]:
    """The current param groups (parameter names as the state dict has them) with the saved
    hyperparameters (lr, betas, initial_lr, lr_scale, ...). Raises CheckpointError when the groups
    hold other parameters (e.g. `freeze_vision` changed)."""
    if [g.get("params") for g in saved] != [list(g["params"]) for g in current]:
        raise CheckpointError(f"optimizer state in {folder} is for other parameters ({len(saved)} groups "
                              f"saved, {len(current)} now; was freeze_vision changed?)")
    return [{**{k: tuple(v) if isinstance(v, list) else v for k, v in s.items() if k != "params"},
             "params": c["params"]} for s, c in zip(saved, current)]


def _require_tensors(tree, where: str) -> None:
    """DCP pickles any non-tensor it is given; refuse them at save time instead."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            _require_tensors(value, f"{where}.{key}" if where else str(key))
    elif not isinstance(tree, torch.Tensor):
        raise TypeError(f"checkpoint state {where} is a {type(tree).__name__}, not a tensor")


@contextlib.contextmanager
def _single_process_quiet():
    """DCP warns on every single-process save and load that it assumes one process; one rank is
    a supported case here, not a mistake."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _distributed() -> bool:
    """A process group exists (FSDP2 ranks): DCP then coordinates the ranks through it."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
