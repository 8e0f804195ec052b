"""Checkpoints a server can use and a resumed run can trust: HF weights in the model's dtype (the fp32
tiny model bit for bit as before; bf16 on request, with the fp32 masters kept for resuming), and
optimizer state that loads without unpickling anything from the checkpoint."""
from __future__ import annotations

import ast
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from learner_fixtures import trajectory, write_colour_mp4
from safetensors.torch import load_file

from vo3rl.config.learner import LearnerConfig
from vo3rl.train import fsdp
from vo3rl.train.checkpoint import MARKER, CheckpointError, hf_dir, optimizer_dir, state_dir, write_checkpoint

REPO = Path(__file__).parents[1]
# Exactly what transformers and `vllm serve` read from the tiny model's folder; no trainer state,
# no `vo3rl_tiny.json` (which would let the tiny-model builder overwrite a trained model).
SERVED = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
          "chat_template.jinja", "processor_config.json", "vocab.json", "merges.txt"}


def _learner(model_dir, **overrides):
    from vo3rl.train.learner import Learner

    cfg = LearnerConfig(**{"lr": 1e-3, "warmup_ratio": 0.0} | overrides)
    return Learner(model_dir, cfg, total_steps=10)


@pytest.fixture(scope="module")
def trajs(tiny_model_dir, tmp_path_factory):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    video = write_colour_mp4(str(tmp_path_factory.mktemp("ckpt_state") / "v.mp4"))
    return [trajectory(tokenizer, video), trajectory(tokenizer, video, sample_id="b", answer_text="B, the blue one")]


@pytest.fixture(scope="module")
def saved(tiny_model_dir, trajs, tmp_path_factory):
    """Per save dtype: a checkpoint after one step, and the step an uninterrupted learner takes next."""
    out = {}
    for save_dtype in ("auto", "bf16"):
        learner = _learner(tiny_model_dir, save_dtype=save_dtype)
        learner.train_step(trajs)
        path = write_checkpoint(learner, tmp_path_factory.mktemp(save_dtype) / "step_1", {"step": 1})
        exported = _weights(learner)
        following = learner.train_step(trajs)
        out[save_dtype] = (path, exported, following, _weights(learner))
    return out


def _weights(learner) -> dict:
    """A copy (one rank's state dict shares the live parameters' storage on CPU)."""
    return {k: v.clone() for k, v in fsdp.full_state_dict(learner.model).items()}


def _resumed_step(model_dir, path, trajs, **overrides):
    learner = _learner(model_dir, **overrides)
    extra = learner.load_checkpoint(path)
    assert extra["step"] == 1 == learner.step
    return learner.train_step(trajs), _weights(learner)


def test_tiny_fp32_model_is_saved_and_resumed_bit_for_bit(tiny_model_dir, saved, trajs):
    path, exported, following, after = saved["auto"]
    hf = hf_dir(path)
    config = json.loads((hf / "config.json").read_text())
    assert json.loads((tiny_model_dir / "config.json").read_text())["dtype"] == "float32" == config["dtype"]
    assert {p.name for p in hf.iterdir()} == SERVED
    weights = load_file(str(hf / "model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.float32}
    live = {k.replace("model.language_model.", "model.").replace("model.visual.", "visual."): v
            for k, v in exported.items() if k != "lm_head.weight"}  # the head is tied to the embedding
    assert set(weights) == set(live) and all(torch.equal(weights[k], live[k]) for k in weights)
    assert json.loads((path / MARKER).read_text())["master_weights"] == "hf"  # stored once: fp32 in hf/
    loss, weights_now = _resumed_step(tiny_model_dir, path, trajs)
    assert loss["loss"] == following["loss"]
    assert all(torch.equal(weights_now[k], after[k]) for k in after)


def test_bf16_checkpoint_states_bf16_and_resumes_from_the_fp32_masters(tiny_model_dir, saved, trajs):
    from transformers import Qwen2_5_VLForConditionalGeneration

    path, exported, following, after = saved["bf16"]
    hf = hf_dir(path)
    config = json.loads((hf / "config.json").read_text())
    assert config["dtype"] == config["text_config"]["dtype"] == config["vision_config"]["dtype"] == "bfloat16"
    assert {t.dtype for t in load_file(str(hf / "model.safetensors")).values()} == {torch.bfloat16}
    fp32_size = (hf_dir(saved["auto"][0]) / "model.safetensors").stat().st_size
    assert (hf / "model.safetensors").stat().st_size < 0.55 * fp32_size
    assert Qwen2_5_VLForConditionalGeneration.from_pretrained(hf).dtype == torch.bfloat16  # as `dtype: auto` serves it
    # Resumed with the optimizer: the fp32 masters from state/, so the next step is the uninterrupted one.
    loss, weights_now = _resumed_step(tiny_model_dir, path, trajs, save_dtype="bf16")
    assert loss["loss"] == following["loss"]
    assert all(torch.equal(weights_now[k], after[k]) for k in after)
    # Weights only: the bf16 copy, which is not the masters (so the check above can fail).
    rounded = _learner(tiny_model_dir)
    rounded.load_checkpoint(path, with_optimizer=False)
    key = "model.language_model.layers.0.mlp.up_proj.weight"
    served = fsdp.full_state_dict(rounded.model)[key]
    assert torch.equal(served, exported[key].to(torch.bfloat16).float()) and not torch.equal(served, exported[key])


def test_a_checkpoint_before_the_first_step_changes_neither_run(tiny_model_dir, trajs, tmp_path):
    """DCP fills an empty optimizer in with a zero-lr step; the saving run and a resumed one must still
    take Adam's first step next, like a learner that never saved."""
    plain = _learner(tiny_model_dir)
    plain.train_step(trajs)
    saver = _learner(tiny_model_dir)
    path = write_checkpoint(saver, tmp_path / "step_0", {"step": 0})
    saver.train_step(trajs)
    resumed = _learner(tiny_model_dir)
    resumed.load_checkpoint(path)
    resumed.train_step(trajs)
    want = _weights(plain)
    for other in (saver, resumed):
        got = _weights(other)
        assert all(torch.equal(got[k], want[k]) for k in want)


class _Payload:
    """Unpickling this creates `marker`: proof that code from the checkpoint ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def _copy(path: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(path, to)
    return to


def test_a_malicious_pickle_in_the_state_folder_never_runs(tiny_model_dir, saved, tmp_path):
    path = _copy(saved["auto"][0], tmp_path / "step_1")
    ran = tmp_path / "code_ran"
    evil = pickle.dumps(_Payload(ran))
    metadata = optimizer_dir(path) / ".metadata"
    original = metadata.read_bytes()
    learner = _learner(tiny_model_dir)
    # Files nothing reads (the old per-rank pickle's name, a stray file beside DCP's): loading works.
    (state_dir(path) / "optim_rank0.pt").write_bytes(evil)
    (optimizer_dir(path) / "extra.pt").write_bytes(evil)
    learner.load_checkpoint(path)
    # DCP's metadata swapped for a pickle: refused before it is read, by its hash...
    metadata.write_bytes(evil)
    with pytest.raises(CheckpointError, match="sha256 differs"):
        learner.load_checkpoint(path)
    # ...and with the hash in the marker forged too, by the allow-list of what metadata may hold.
    marker = json.loads((path / MARKER).read_text())
    import hashlib

    marker["optimizer"]["metadata_sha256"] = hashlib.sha256(evil).hexdigest()
    (path / MARKER).write_text(json.dumps(marker))
    with pytest.raises(CheckpointError, match="refers to posix.mkdir"):
        learner.load_checkpoint(path)
    assert not ran.exists()
    # Genuine DCP metadata that declares a non-tensor entry (DCP would torch.load it unrestricted).
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata

    parsed = pickle.loads(original)
    parsed.state_dict_metadata["optimizer.payload"] = BytesStorageMetadata()
    forged = pickle.dumps(parsed)
    metadata.write_bytes(forged)
    marker["optimizer"]["metadata_sha256"] = hashlib.sha256(forged).hexdigest()
    (path / MARKER).write_text(json.dumps(marker))
    with pytest.raises(CheckpointError, match="'optimizer.payload' is not a tensor"):
        learner.load_checkpoint(path)


def test_no_code_of_the_package_unpickles_from_files():
    """Every `torch.load` passes weights_only=True; `pickle` is read only by the allow-listed metadata
    reader (vo3rl/train/checkpoint_state.py)."""
    offenders = []
    for folder in ("vo3rl", "workers", "rewards"):
        for source in sorted((REPO / folder).rglob("*.py")):
            name = str(source.relative_to(REPO))
            text = source.read_text()
            for node in ast.walk(ast.parse(text, name)):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                    flags = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
                    if flags.get("weights_only") is not True:
                        offenders.append(f"{name}:{node.lineno} torch.load without weights_only=True")
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "pickle" \
                        and node.attr in ("load", "loads", "Unpickler") and name != "vo3rl/train/checkpoint_state.py":
                    offenders.append(f"{name}:{node.lineno} pickle.{node.attr}")
            if "weights_only=False" in text:
                offenders.append(f"{name}: weights_only=False")
    assert offenders == []
