"""The one checkpoint writer (SFT and RL): everything under a temporary name, the marker last, so a save
killed at any point never leaves a directory that passes for a complete checkpoint."""
from __future__ import annotations

import json

import pytest

from vo3rl.train.checkpoint import (
    DRIVER_STATE,
    MARKER,
    TRAINER_STATE,
    CheckpointError,
    latest_checkpoint,
    read_driver_state,
    validate_checkpoint,
    write_checkpoint,
)


class FileLearner:
    """Writes what a real learner writes (config, weights, trainer state, optimizer shard); can die half-way."""

    def __init__(self, die_after_weights: bool = False):
        self.die_after_weights = die_after_weights
        self.saved_with = None

    def save_checkpoint(self, path, with_optimizer=True, extra=None):
        from pathlib import Path

        path = Path(path)
        path.mkdir(parents=True)
        (path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl", "hidden_size": 8}))
        (path / "model.safetensors").write_bytes(b"weights")
        (path / TRAINER_STATE).write_text(json.dumps({"step": 7, "world_size": 1}))
        if self.die_after_weights:
            raise KeyboardInterrupt("killed before the optimizer state was written")
        if with_optimizer:
            (path / "optim_rank0.pt").write_bytes(b"optimizer")
        self.saved_with = extra
        return str(path)


def test_a_complete_checkpoint_has_every_part_and_the_marker_last(tmp_path):
    path = write_checkpoint(FileLearner(), tmp_path / "step_000003", {"step": 3, "seed": 5})
    assert {p.name for p in path.iterdir()} == {"config.json", "model.safetensors", TRAINER_STATE, "optim_rank0.pt",
                                                DRIVER_STATE, MARKER}
    assert read_driver_state(path) == {"step": 3, "seed": 5}
    meta = validate_checkpoint(path)
    assert meta["step"] == 7 and meta["driver"] == {"step": 3, "seed": 5}
    assert not (tmp_path / "step_000003.tmp").exists() and latest_checkpoint(tmp_path) == path


def test_a_save_killed_half_way_leaves_the_previous_checkpoint_standing(tmp_path):
    first = write_checkpoint(FileLearner(), tmp_path / "step_000001", {"step": 1})
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(FileLearner(die_after_weights=True), tmp_path / "step_000002", {"step": 2})
    assert not (tmp_path / "step_000002").exists()  # only step_000002.tmp, which is no checkpoint
    assert latest_checkpoint(tmp_path) == first
    with pytest.raises(CheckpointError, match="incomplete"):
        validate_checkpoint(tmp_path / "step_000002.tmp")


def test_rewriting_a_step_replaces_it_and_bad_driver_state_is_a_clear_error(tmp_path):
    write_checkpoint(FileLearner(), tmp_path / "step_1", {"step": 1})
    write_checkpoint(FileLearner(), tmp_path / "step_1", {"step": 1, "again": True})
    assert read_driver_state(tmp_path / "step_1")["again"] is True
    (tmp_path / "step_1" / DRIVER_STATE).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_driver_state(tmp_path / "step_1")
    (tmp_path / "step_1" / DRIVER_STATE).unlink()
    with pytest.raises(CheckpointError, match="driver"):
        read_driver_state(tmp_path / "step_1")
    (tmp_path / "step_1" / MARKER).write_text("garbage")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        validate_checkpoint(tmp_path / "step_1")
