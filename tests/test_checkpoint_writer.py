"""The one checkpoint writer (SFT and RL): `hf/` holds only what a server loads, `state/` the rest,
everything under a temporary name and the marker last, so a save killed at any point never leaves a
directory that passes for a complete checkpoint; `keep_last` prunes old complete checkpoints only."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from vo3rl.config.learner import LearnerConfig
from vo3rl.train.checkpoint import (
    DRIVER_STATE,
    MARKER,
    TRAINER_STATE,
    CheckpointError,
    hf_dir,
    latest_checkpoint,
    prune_checkpoints,
    read_driver_state,
    resolve_save_dtype,
    state_dir,
    validate_checkpoint,
    write_checkpoint,
)
from vo3rl.train.retention import checkpoints_to_delete


class FileLearner:
    """Writes what a real learner writes (HF config and weights, trainer state, optimizer files); can
    die half-way."""

    def __init__(self, die_after_weights: bool = False):
        self.die_after_weights = die_after_weights

    def save_checkpoint(self, path, with_optimizer=True, extra=None):
        hf, state = hf_dir(path), state_dir(path)
        hf.mkdir(parents=True)
        (hf / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl", "hidden_size": 8}))
        (hf / "model.safetensors").write_bytes(b"weights")
        if self.die_after_weights:
            raise KeyboardInterrupt("killed before the optimizer state was written")
        state.mkdir()
        (state / TRAINER_STATE).write_text(json.dumps({"step": 7, "world_size": 1}))
        if with_optimizer:
            (state / "optimizer").mkdir()
            (state / "optimizer" / ".metadata").write_bytes(b"dcp")
        return str(path)


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}


def test_a_complete_checkpoint_has_every_part_and_the_marker_last(tmp_path):
    path = write_checkpoint(FileLearner(), tmp_path / "step_000003", {"step": 3, "seed": 5})
    assert _tree(path) == {"hf/config.json", "hf/model.safetensors", f"state/{TRAINER_STATE}",
                           "state/optimizer/.metadata", f"state/{DRIVER_STATE}", MARKER}
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
    driver = state_dir(tmp_path / "step_1") / DRIVER_STATE
    driver.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_driver_state(tmp_path / "step_1")
    driver.unlink()
    with pytest.raises(CheckpointError, match="driver"):
        read_driver_state(tmp_path / "step_1")
    (tmp_path / "step_1" / MARKER).write_text("garbage")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        validate_checkpoint(tmp_path / "step_1")


def test_the_hf_directory_given_as_a_checkpoint_is_named_as_such(tmp_path):
    path = write_checkpoint(FileLearner(), tmp_path / "step_4", {"step": 4})
    (tmp_path / "final").symlink_to(Path("step_4") / "hf")  # what SFT's `final` is
    for given in (hf_dir(path), tmp_path / "final"):
        with pytest.raises(CheckpointError, match="is the HF directory of checkpoint .*step_4: resume from that"):
            validate_checkpoint(given)
    (path / "config.json").write_text("{}")  # weights beside the marker: the layout before hf/ + state/
    (path / "hf" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="older vo3rl layout"):
        validate_checkpoint(path)


# -- save dtype ------------------------------------------------------------------------------------

@pytest.mark.parametrize("save_dtype, bf16, source, want", [
    ("auto", True, {"dtype": "float32"}, "bfloat16"),        # bf16 training saves bf16
    ("auto", False, {"dtype": "float32"}, "float32"),        # the tiny demo: fp32 stays fp32
    ("auto", False, {"dtype": "bfloat16"}, "bfloat16"),      # a bf16 model trained in fp32 keeps its dtype
    ("auto", False, {"torch_dtype": "bfloat16"}, "bfloat16"),  # the older key
    ("auto", False, {"torch_dtype": "float16"}, "float32"),  # neither fp32 nor bf16
    ("auto", False, {}, "float32"),
    ("fp32", True, {"dtype": "bfloat16"}, "float32"),
    ("bf16", False, {"dtype": "float32"}, "bfloat16"),
])
def test_save_dtype_follows_training_then_the_source_model(save_dtype, bf16, source, want):
    assert resolve_save_dtype(save_dtype, bf16, source) == want


@pytest.mark.parametrize("key, value, message", [
    ("save_dtype", "fp16", "learner.save_dtype = 'fp16': must be one of auto, bf16, fp32"),
    ("keep_last", -1, "learner.keep_last = -1: must be >= 0 (0: keep all)"),
])
def test_checkpoint_keys_are_validated(key, value, message):
    with pytest.raises(ValueError) as caught:
        LearnerConfig(**{key: value}).validate()
    assert str(caught.value) == message
    LearnerConfig(save_dtype="bf16", keep_last=3).validate()


# -- keep_last -------------------------------------------------------------------------------------

STEPS = {"step_1": 1, "step_2": 2, "step_3": 3, "step_4": 4, "step_5": 5}


def test_keep_last_deletes_the_oldest_beyond_n_counting_the_new_one():
    assert checkpoints_to_delete(STEPS, "step_5", 2) == ["step_1", "step_2", "step_3"]
    assert checkpoints_to_delete(STEPS, "step_5", 1) == ["step_1", "step_2", "step_3", "step_4"]
    assert checkpoints_to_delete(STEPS, "step_5", 5) == [] == checkpoints_to_delete(STEPS, "step_5", 9)
    assert checkpoints_to_delete(STEPS, "step_5", 0) == []  # 0 keeps all


def test_keep_last_never_deletes_newer_or_protected_checkpoints():
    # Resumed from step_3 after an attempt that got to step_5: writing step_3 again touches 4 and 5 not.
    assert checkpoints_to_delete(STEPS, "step_3", 1) == ["step_1", "step_2"]
    assert checkpoints_to_delete(STEPS, "step_5", 1, protected={"step_2"}) == ["step_1", "step_3", "step_4"]
    with pytest.raises(ValueError, match="step_9"):
        checkpoints_to_delete(STEPS, "step_9", 1)


def test_pruning_touches_only_complete_checkpoints_and_not_final(tmp_path):
    for step in (1, 2, 3):
        write_checkpoint(FileLearner(), tmp_path / f"step_{step}", {"step": step})
    (tmp_path / "final").symlink_to(Path("step_1") / "hf")  # SFT's link to an earlier run's last model
    (tmp_path / "step_0").mkdir()  # not ours: no marker
    (tmp_path / "step_0" / "config.json").write_text("{}")
    (tmp_path / "notes").mkdir()
    write_checkpoint(FileLearner(), tmp_path / "step_4", {"step": 4}, keep_last=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final", "notes", "step_0", "step_1", "step_4"]
    assert validate_checkpoint(tmp_path / "step_1") and (tmp_path / "step_0" / "config.json").is_file()
    assert prune_checkpoints(tmp_path, tmp_path / "step_4", 0) == []
