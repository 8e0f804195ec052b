"""`vo3rl sft recipes/tiny_cpu/sft.yaml learner.backend=megatron` runs (two steps, one rank in process),
writes its checkpoint, and its losses are FSDP2's on the same data and model (fp32; 1e-5 relative)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
SMALL = ["data.synth.n_train_videos=4", "data.synth.n_eval_videos=2", "sft.stages.0.max_steps=2",
         "sft.stages.1.max_steps=1", "sft.batch_size=2", "sft.gen_eval=false",
         "sft.eval_every=0", "sft.log_every=1", "ray.temp_dir=/tmp/vo3rl-msft"]


def _sft(out: Path, *overrides: str) -> list[float]:
    env = dict(os.environ, WANDB_MODE="offline", VO3RL_PROGRESS="0")
    result = subprocess.run([sys.executable, "-m", "vo3rl.cli", "sft", "recipes/tiny_cpu/sft.yaml",
                             f"run.output_dir={out}", *SMALL, *overrides],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    records = [json.loads(line) for line in (out / "sft" / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in records if "train/loss" in r]


def test_sft_with_the_megatron_backend_runs_and_its_first_losses_are_fsdp2s(tmp_path):
    fsdp = _sft(tmp_path / "fsdp")
    shared = [f"model.path={tmp_path / 'fsdp' / 'model'}", f"data.synth_dir={tmp_path / 'fsdp' / 'data'}"]
    megatron = _sft(tmp_path / "megatron", "learner.backend=megatron", *shared)
    assert len(fsdp) >= 2 and len(megatron) == len(fsdp)
    assert megatron[:2] == pytest.approx(fsdp[:2], rel=1e-5)
    final = tmp_path / "megatron" / "sft" / "final"
    assert (final / "config.json").is_file() and (final / "model.safetensors").is_file()
