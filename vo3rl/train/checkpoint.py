"""Checkpoints: full HF directories (safetensors, loadable by `transformers` and `vllm serve`), plus
per-rank optimizer/scheduler state and the driver's state, written by ONE writer (`write_checkpoint`)
for SFT and RL alike.

A checkpoint directory is complete when its `vo3rl_checkpoint.json` marker exists. The writer puts
everything (the learner's weights, config, processor files and optimizer shards, then
`driver_state.json`) under a temporary name, fsyncs it, renames it into place, and only then writes
the marker. A save killed at any moment leaves either the previous checkpoint or a directory without a
marker, never a "complete" one that lacks a part. Loading checks completeness and that the
checkpoint's architecture and sizes are the current model's, and says what is wrong otherwise.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

MARKER = "vo3rl_checkpoint.json"
TRAINER_STATE = "trainer_state.json"  # the learner's step, world size and the model's fingerprint
DRIVER_STATE = "driver_state.json"  # where the driver loop was (SFT stage and step, RL step, seed)
# Sizes that must agree for a checkpoint to be "this model".
_SHAPE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size",
               "intermediate_size")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says why."""


def _text_config(config) -> dict:
    config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return config.get("text_config") or config


def fingerprint(config) -> dict:
    """What identifies the architecture: model type and the text sizes."""
    config_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    text = _text_config(config_dict)
    return {"model_type": config_dict.get("model_type"), **{k: text.get(k) for k in _SHAPE_KEYS}}


def validate_checkpoint(path: str | Path, expected_config=None) -> dict:
    """The checkpoint's metadata; raises CheckpointError when `path` is missing, incomplete, or (with
    `expected_config`) a checkpoint of another model."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist")
    marker = path / MARKER
    if not marker.is_file():
        raise CheckpointError(f"checkpoint {path} is incomplete: no {MARKER} (the save did not finish)")
    try:
        meta = json.loads(marker.read_text())
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path}: {MARKER} is not valid JSON ({exc})") from None
    if not (path / "config.json").is_file():
        raise CheckpointError(f"checkpoint {path} is incomplete: config.json is missing")
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text())["weight_map"].values())
        absent = sorted(s for s in shards if not (path / s).is_file())
        if absent:
            raise CheckpointError(f"checkpoint {path} is incomplete: weight shards missing: {absent[:3]}")
    elif not (path / "model.safetensors").is_file():
        raise CheckpointError(f"checkpoint {path} is incomplete: no model.safetensors")
    if expected_config is not None:
        have = fingerprint(json.loads((path / "config.json").read_text()))
        want = fingerprint(expected_config)
        differ = {k: (have[k], want[k]) for k in want if have.get(k) != want[k]}
        if differ:
            detail = ", ".join(f"{k}: checkpoint {a} vs model {b}" for k, (a, b) in differ.items())
            raise CheckpointError(f"checkpoint {path} is from another model ({detail})")
    return meta


def save_hf_checkpoint(model_class, config, state: dict, path: str | Path, source_dir: str | Path | None,
                       meta: dict, generation_config=None) -> Path:
    """Write the HF files of a full `state` (module key names) into `path` on the calling process
    (rank 0), with `meta` and the model's fingerprint in `trainer_state.json`. Processor and tokenizer
    files are copied from `source_dir` (the model the run started from). Writes no marker: the
    directory becomes a checkpoint only through `write_checkpoint`."""
    import torch

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if source_dir is not None:
        for item in Path(source_dir).iterdir():
            if item.is_file() and item.name not in (*_WEIGHT_FILES, "config.json", MARKER, TRAINER_STATE, DRIVER_STATE) \
                    and not item.name.endswith(".safetensors") and not item.name.startswith("optim_rank"):
                shutil.copy2(item, path / item.name)
    with torch.device("meta"):
        skeleton = model_class(config)
    if generation_config is not None:
        skeleton.generation_config = generation_config
    skeleton.save_pretrained(path, state_dict=state, safe_serialization=True)
    (path / TRAINER_STATE).write_text(json.dumps({**meta, **fingerprint(config)}, indent=2) + "\n")
    return path


def write_checkpoint(learner, path: str | Path, driver_state: dict, with_optimizer: bool = True) -> Path:
    """THE checkpoint writer of SFT and RL. `learner` is any `vo3rl.train.contract.PolicyLearner`
    (in-process or the Ray rank group); `driver_state` is what the driver needs to resume (JSON).
    Writes `path` atomically (see the module docstring) and returns it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    learner.save_checkpoint(str(tmp), with_optimizer)
    (tmp / DRIVER_STATE).write_text(json.dumps(driver_state, indent=2) + "\n")
    trainer_state = json.loads((tmp / TRAINER_STATE).read_text())
    _fsync_tree(tmp)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    _fsync(path.parent)
    marker_tmp = path / (MARKER + ".tmp")
    marker_tmp.write_text(json.dumps({**trainer_state, "driver": driver_state}, indent=2) + "\n")
    _fsync(marker_tmp)
    os.replace(marker_tmp, path / MARKER)  # the commit point
    _fsync(path)
    return path


def read_driver_state(path: str | Path) -> dict:
    """The driver state a complete checkpoint was written with. Raises CheckpointError."""
    source = Path(path) / DRIVER_STATE
    validate_checkpoint(path)
    if not source.is_file():
        raise CheckpointError(f"checkpoint {path} has no {DRIVER_STATE} (not written by a vo3rl driver)")
    try:
        return json.loads(source.read_text())
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path}: {DRIVER_STATE} is not valid JSON ({exc})") from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for item in sorted(root.rglob("*"), reverse=True):  # files before the folders holding them
        _fsync(item)
    _fsync(root)


def optimizer_file(path: str | Path, rank: int) -> Path:
    return Path(path) / f"optim_rank{rank}.pt"


def save_optimizer(path: str | Path, rank: int, world_size: int, optimizer, scheduler, extra: dict) -> None:
    """This rank's shard of the optimizer and the scheduler state (each rank writes its own file)."""
    import torch

    Path(path).mkdir(parents=True, exist_ok=True)
    target = optimizer_file(path, rank)
    tmp = target.with_suffix(".tmp")
    torch.save({"world_size": world_size, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None, "extra": extra}, tmp)
    os.replace(tmp, target)


def load_optimizer(path: str | Path, rank: int, world_size: int, optimizer, scheduler) -> dict:
    """Restore this rank's optimizer and the scheduler; returns the saved `extra`. Raises
    CheckpointError when the file is missing or was written by another number of ranks."""
    import torch

    source = optimizer_file(path, rank)
    if not source.is_file():
        raise CheckpointError(f"checkpoint {path} has no optimizer state for rank {rank} ({source.name})")
    saved = torch.load(source, map_location="cpu", weights_only=False)
    if saved["world_size"] != world_size:
        raise CheckpointError(f"optimizer state in {path} was saved by {saved['world_size']} ranks, "
                              f"this learner has {world_size}")
    optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None and saved["scheduler"] is not None:
        scheduler.load_state_dict(saved["scheduler"])
    return saved["extra"]


def latest_checkpoint(root: str | Path) -> Path | None:
    """The complete `step_*` directory with the highest step under `root`, or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    done = [p for p in root.glob("step_*") if (p / MARKER).is_file() and p.name[5:].isdigit()]
    return max(done, key=lambda p: int(p.name[5:]), default=None)
