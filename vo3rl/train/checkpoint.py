"""Checkpoints: full HF directories (safetensors, loadable by `transformers` and `vllm serve`), plus
per-rank optimizer/scheduler state, written atomically.

A checkpoint directory is complete when its `vo3rl_checkpoint.json` exists: it is written last, after
the weights, config and processor files, and the whole directory is first written under a temporary
name and renamed into place. Loading checks completeness and that the checkpoint's architecture and
sizes are the current model's, and says what is wrong otherwise.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

MARKER = "vo3rl_checkpoint.json"
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
    meta = json.loads(marker.read_text())
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
    """Write an HF directory from a full `state` (module key names) on the calling process (rank 0).
    Processor and tokenizer files are copied from `source_dir` (the model the run started from)."""
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if source_dir is not None:
        for item in Path(source_dir).iterdir():
            if item.is_file() and item.name not in (*_WEIGHT_FILES, "config.json", MARKER) \
                    and not item.name.endswith(".safetensors"):
                shutil.copy2(item, tmp / item.name)
    with torch.device("meta"):
        skeleton = model_class(config)
    if generation_config is not None:
        skeleton.generation_config = generation_config
    skeleton.save_pretrained(tmp, state_dict=state, safe_serialization=True)
    (tmp / MARKER).write_text(json.dumps({**meta, **fingerprint(config)}, indent=2) + "\n")
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


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
