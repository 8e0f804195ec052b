"""benchmarks/bench_learner_gpu.py: the published 3B/7B figures it builds, its FLOP count, the depth it
picks for one card, and its `--tiny` run on CPU (the GPU run's code path at the tiny model's size)."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_learner_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_learner_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, published_billions", [("3b", 3.75), ("7b", 8.29)])
def test_configs_have_the_published_sizes(bench, name, published_billions):
    """Instantiated on the meta device: the parameter total is the model card's, and the matmul count
    the FLOP formula uses covers all but the biases and norms."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    config = bench.hf_config(name)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    total = sum(p.numel() for p in model.parameters())
    assert total / 1e9 == pytest.approx(published_billions, abs=0.01)
    counts = bench.parameter_counts(config)
    counted = counts["layer"] * counts["layers"] + counts["embed"] + counts["vision"]
    assert 0.995 < counted / total <= 1.0


def test_flops_and_fitting_depth(bench):
    config = bench.hf_config("7b")
    trajectories = bench.step_trajectories(8192, side=16, seed=0)
    assert 7000 < sum(len(t) for t in trajectories) <= 8192
    from vo3rl.train.tdam import tdam_blocks

    assert all(len(tdam_blocks(t)) == 2 for t in trajectories)  # an answer block and a grounding block each
    counts = bench.parameter_counts(config)
    dense = 6 * counts["layer"] * counts["layers"] * sum(len(t) for t in trajectories)
    assert dense < bench.model_flops(config, trajectories) < 1.5 * dense
    card = 81559 * 2**20  # an H100 80GB as torch reports its total memory
    assert bench.fitting_layers(bench.hf_config("3b"), card, 32768, sharded=True) == 36
    assert 4 <= bench.fitting_layers(config, card, 32768, sharded=True) < 28


@pytest.mark.slow
def test_tiny_run_on_cpu(tmp_path):
    out = tmp_path / "tiny.json"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    run = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--tokens", "256", "--steps", "1", "--out", str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "tok/s" in run.stdout and "FlexAttention vs SDPA" in run.stdout
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["peak_tflops"] > 0 and result["sharded"]
    rows = result["results"]
    assert {(r["tdam"], r["attention"], r["packing"]) for r in rows} == {
        (True, "sdpa", False), (False, "sdpa", False), (False, "sdpa", True)}
    for row in rows:
        assert row["step_s"] > 0 and row["tokens_per_s"] > 0 and 0 < row["mfu"] < 1
        assert row["padded_tokens"] >= row["tokens"]
        if row["packing"]:
            assert row["padded_tokens"] == row["tokens"]
    assert {s["why"] for s in result["skipped"]} == {"torch's FlexAttention has no CPU backward"}
    check = result["flex_vs_sdpa"]["tiny"]
    assert check["tokens"] > 10 and check["max_abs_diff"] < 1e-4 and not check["bf16"]
