"""benchmarks/estimate_step.py's accounting: the 7B's parameter count against the published one, and the
estimate of the shipped recipe (every part positive, the sync-mode step their sum)."""
import argparse
import importlib.util
from pathlib import Path

from vo3rl.config.loader import load_recipe
from vo3rl.model.lookalike import QWEN2_5_VL_7B

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("estimate_step", ROOT / "benchmarks" / "estimate_step.py")
estimate_step = importlib.util.module_from_spec(spec)
spec.loader.exec_module(estimate_step)


def test_parameter_count_matches_the_published_8_29b():
    sizes = estimate_step.model_sizes(QWEN2_5_VL_7B)
    assert abs(sizes["total"] / 1e9 - 8.29) < 0.01
    assert sizes["kv_bytes_per_token"] == 2 * 28 * 4 * 128 * 2  # K and V, 28 layers, 4 KV heads of 128, bf16


def test_estimate_of_the_video_o3_recipe_adds_up():
    recipe = load_recipe(ROOT / "recipes/video_o3/rl.yaml", ["rl.init_from=/ckpt/sft"])
    args = argparse.Namespace(gpu="h100", crops=3, crop_tokens=4096, gen_tokens=400, prompt_tokens=300, tail=2.0,
                              prefill_mfu=0.5, train_mfu=0.4, decode_bw_eff=0.6, link_gbs=50.0)
    result = estimate_step.estimate(recipe, args)
    assert result["trajectories"] == 32 * 16 and result["gpus"] == 32
    assert result["context_tokens"] <= 32768 - 2000
    for part in ("rollout_prefill_s", "rollout_decode_s", "learner_s", "sync_s"):
        assert result[part] > 0
    assert abs(result["step_sync_mode_s"] - result["rollout_s"] - result["learner_s"] - result["sync_s"]) < 1e-9
    fewer_crops = estimate_step.estimate(recipe, argparse.Namespace(**{**vars(args), "crops": 1}))
    assert fewer_crops["learner_s"] < result["learner_s"]  # the tokens are the crops
