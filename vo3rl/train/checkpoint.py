"""Checkpoints, written by ONE writer (`write_checkpoint`) for SFT and RL alike. A checkpoint `step_N/`:

    step_N/hf/                    what transformers and `vllm serve` load: config.json, generation_config.json,
                                  safetensors weights (+ index), tokenizer, processor and chat-template files
    step_N/state/                 what only a resumed run needs
        trainer_state.json        learner step, world size, the model's fingerprint, dtype, scheduler, RNG (JSON)
        driver_state.json         where the driver loop was (SFT stage and step, RL step, seed)
        optimizer/                optimizer tensors (and fp32 master weights when hf/ is not fp32), DCP files
    step_N/vo3rl_checkpoint.json  the marker: the checkpoint is complete when it exists

Serve or fine-tune from `step_N/hf` (`model.path`, `rl.init_from`; SFT's `final` links to the last
one's `hf/`); resume from `step_N`. Nothing here
is unpickled on load (`vo3rl.train.checkpoint_state`), and any number of ranks can resume from it.

The writer puts everything under a temporary name, fsyncs it, renames it into place, and only then
writes the marker: a save killed at any moment leaves either the previous checkpoint or a directory
without a marker, never a "complete" one that lacks a part. Loading checks completeness and that the
checkpoint's architecture and sizes are the current model's, and says what is wrong otherwise.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

from vo3rl.train.retention import checkpoints_to_delete

MARKER = "vo3rl_checkpoint.json"
HF_DIR = "hf"
STATE_DIR = "state"
TRAINER_STATE = "trainer_state.json"  # in state/
DRIVER_STATE = "driver_state.json"  # in state/
OPTIMIZER_DIR = "optimizer"  # in state/: DCP files
# Files of a source model that transformers / vLLM read besides config and weights; LICENSE and NOTICE
# travel with the weights they cover. Anything else in the source folder stays out of hf/.
_SERVE_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                "special_tokens_map.json", "added_tokens.json", "chat_template.json", "chat_template.jinja",
                "preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json",
                "LICENSE", "NOTICE")
# Sizes that must agree for a checkpoint to be "this model".
_SHAPE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size",
               "intermediate_size")
SAVE_DTYPES = {"bf16": "bfloat16", "fp32": "float32"}  # recipe name -> the name config.json states


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says why."""


def hf_dir(path: str | Path) -> Path:
    """The HF model directory of checkpoint `path` (what `vllm serve` and `model.path` take)."""
    return Path(path) / HF_DIR


def state_dir(path: str | Path) -> Path:
    """The resume-only part of checkpoint `path`."""
    return Path(path) / STATE_DIR


def optimizer_dir(path: str | Path) -> Path:
    """Where checkpoint `path` keeps its optimizer tensors (DCP; see `vo3rl.train.checkpoint_state`)."""
    return state_dir(path) / OPTIMIZER_DIR


def _text_config(config) -> dict:
    config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return config.get("text_config") or config


def fingerprint(config) -> dict:
    """What identifies the architecture: model type and the text sizes."""
    config_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    text = _text_config(config_dict)
    return {"model_type": config_dict.get("model_type"), **{k: text.get(k) for k in _SHAPE_KEYS}}


def resolve_save_dtype(save_dtype: str, trains_bf16: bool, source_config: dict) -> str:
    """The dtype name ("bfloat16" or "float32") the HF weights are written in. `save_dtype` "auto":
    bfloat16 when the learner computes in bf16, else the dtype the source model's config.json states
    (`dtype`, or the older `torch_dtype`) when it is float32 or bfloat16, else float32."""
    if save_dtype != "auto":
        return SAVE_DTYPES[save_dtype]
    if trains_bf16:
        return "bfloat16"
    stated = source_config.get("dtype") or source_config.get("torch_dtype")
    return stated if stated in ("float32", "bfloat16") else "float32"


def model_folder(path: str | Path) -> Path:
    """The folder to load a model from when a user names `path`: `path` itself, or, for a vo3rl
    checkpoint `step_N` (its marker present), the `step_N/hf` inside it."""
    path = Path(path)
    if (path / MARKER).is_file() and (path / HF_DIR / "config.json").is_file():
        return path / HF_DIR
    return path


def validate_checkpoint(path: str | Path, expected_config=None) -> dict:
    """The checkpoint's metadata (its marker); raises CheckpointError when `path` is missing,
    incomplete, or (with `expected_config`) a checkpoint of another model."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist")
    marker = path / MARKER
    if not marker.is_file():
        around = _checkpoint_of(path.resolve())
        if around != path.resolve() and (around / MARKER).is_file():
            raise CheckpointError(f"{path} is the HF directory of checkpoint {around}: resume from that")
        raise CheckpointError(f"checkpoint {path} is incomplete: no {MARKER} (the save did not finish)")
    try:
        meta = json.loads(marker.read_text())
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path}: {MARKER} is not valid JSON ({exc})") from None
    hf = hf_dir(path)
    if not (hf / "config.json").is_file():
        older = " (an older vo3rl layout, weights beside the marker)" if (path / "config.json").is_file() else ""
        raise CheckpointError(f"checkpoint {path} is incomplete: {HF_DIR}/config.json is missing{older}")
    index = hf / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text())["weight_map"].values())
        absent = sorted(s for s in shards if not (hf / s).is_file())
        if absent:
            raise CheckpointError(f"checkpoint {path} is incomplete: weight shards missing: {absent[:3]}")
    elif not (hf / "model.safetensors").is_file():
        raise CheckpointError(f"checkpoint {path} is incomplete: no {HF_DIR}/model.safetensors")
    if expected_config is not None:
        have = fingerprint(json.loads((hf / "config.json").read_text()))
        want = fingerprint(expected_config)
        differ = {k: (have[k], want[k]) for k in want if have.get(k) != want[k]}
        if differ:
            detail = ", ".join(f"{k}: checkpoint {a} vs model {b}" for k, (a, b) in differ.items())
            raise CheckpointError(f"checkpoint {path} is from another model ({detail})")
    return meta


def save_hf_checkpoint(model_class, config, state: dict, path: str | Path, source_dir: str | Path | None,
                       dtype: str = "float32", generation_config=None) -> Path:
    """Write the HF directory `path` of a full `state` (module key names) on the calling process
    (rank 0): weights cast to `dtype` ("float32" or "bfloat16", also what config.json states), config,
    generation config, and the tokenizer / processor files of `source_dir` (the model the run started
    from). Nothing else goes into `path`."""
    import torch

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if source_dir is not None:
        for name in _SERVE_FILES:
            if (Path(source_dir) / name).is_file():
                shutil.copy2(Path(source_dir) / name, path / name)
    torch_dtype = getattr(torch, dtype)
    config = copy.deepcopy(config)  # the live model's config keeps its own dtype
    for part in (config, getattr(config, "text_config", None), getattr(config, "vision_config", None)):
        if part is not None:
            part.dtype = torch_dtype
    with torch.device("meta"):
        skeleton = model_class(config).to(torch_dtype)  # save_pretrained states the skeleton's dtype
    if generation_config is not None:
        skeleton.generation_config = generation_config
    skeleton.save_pretrained(path, state_dict=_cast_keeping_ties(state, torch_dtype), safe_serialization=True)
    return path


def _cast_keeping_ties(state: dict, dtype) -> dict:
    """`state` in `dtype`, a tensor shared by several keys (a tied head) still shared, so that
    save_pretrained still writes it once. A no-op for tensors already in `dtype`."""
    cast: dict = {}
    for tensor in state.values():
        cast.setdefault((tensor.data_ptr(), tuple(tensor.shape)), tensor.to(dtype))
    return {k: cast[(v.data_ptr(), tuple(v.shape))] for k, v in state.items()}


def write_trainer_state(path: str | Path, trainer_state: dict) -> None:
    """The learner's part of `state/` (JSON) in the checkpoint being written at `path` (rank 0)."""
    folder = state_dir(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TRAINER_STATE).write_text(json.dumps(trainer_state, indent=2) + "\n")


def write_checkpoint(learner, path: str | Path, driver_state: dict, with_optimizer: bool = True,
                     keep_last: int = 0) -> Path:
    """THE checkpoint writer of SFT and RL. `learner` is any `vo3rl.train.contract.PolicyLearner`
    (in-process or the Ray rank group); `driver_state` is what the driver needs to resume (JSON).
    Writes `path` atomically (see the module docstring) and returns it. With `keep_last` > 0, older
    complete checkpoints beside `path` are then deleted down to the newest `keep_last`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    learner.save_checkpoint(str(tmp), with_optimizer)
    (state_dir(tmp) / DRIVER_STATE).write_text(json.dumps(driver_state, indent=2) + "\n")
    trainer_state = json.loads((state_dir(tmp) / TRAINER_STATE).read_text())
    _fsync_tree(tmp)
    if path.exists():
        _uncommit(path)
        shutil.rmtree(path)
    os.replace(tmp, path)
    _fsync(path.parent)
    marker_tmp = path / (MARKER + ".tmp")
    marker_tmp.write_text(json.dumps({**trainer_state, "driver": driver_state}, indent=2) + "\n")
    _fsync(marker_tmp)
    os.replace(marker_tmp, path / MARKER)  # the commit point
    _fsync(path)
    if keep_last:
        prune_checkpoints(path.parent, path, keep_last)
    return path


def read_driver_state(path: str | Path) -> dict:
    """The driver state a complete checkpoint was written with. Raises CheckpointError."""
    validate_checkpoint(path)
    source = state_dir(path) / DRIVER_STATE
    if not source.is_file():
        raise CheckpointError(f"checkpoint {path} has no {STATE_DIR}/{DRIVER_STATE} (not written by a vo3rl driver)")
    try:
        return json.loads(source.read_text())
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path}: {DRIVER_STATE} is not valid JSON ({exc})") from None


def _step_of(name: str) -> int | None:
    digits = name[5:] if name.startswith("step_") else ""
    return int(digits) if digits.isdigit() else None


def _complete_steps(root: Path) -> dict[str, int]:
    """{name: step} of the complete `step_<N>` checkpoint directories (not links) under `root`."""
    found = {}
    for item in root.glob("step_*"):
        step = _step_of(item.name)
        if step is not None and not item.is_symlink() and (item / MARKER).is_file():
            found[item.name] = step
    return found


def latest_checkpoint(root: str | Path) -> Path | None:
    """The complete `step_*` directory with the highest step under `root`, or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    done = _complete_steps(root)
    return root / max(done, key=done.get) if done else None


def prune_checkpoints(root: str | Path, newest: str | Path, keep_last: int) -> list[Path]:
    """Delete the complete checkpoints under `root` older than `newest` beyond the newest `keep_last`
    (see `retention.checkpoints_to_delete`); a checkpoint a link under `root` points at (SFT's `final`,
    into its `hf/`) is kept. Returns what was deleted."""
    root = Path(root)
    linked = {_checkpoint_of(item.resolve()).name for item in root.iterdir() if item.is_symlink()}
    doomed = checkpoints_to_delete(_complete_steps(root), Path(newest).name, keep_last, linked)
    for name in doomed:
        _uncommit(root / name)
        shutil.rmtree(root / name)
    return [root / name for name in doomed]


def _checkpoint_of(target: Path) -> Path:
    """The checkpoint a link target names: itself, or the checkpoint around an `hf/` (SFT's `final`)."""
    return target.parent if target.name == HF_DIR else target


def _uncommit(path: Path) -> None:
    """Remove the marker first, so a deletion cut short never leaves a 'complete' partial checkpoint."""
    (path / MARKER).unlink(missing_ok=True)
    _fsync(path)


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
