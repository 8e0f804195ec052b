"""`vo3rl report`: a run folder's metrics.jsonl files become PNG panels and a Markdown page; bad lines
and values are left out and counted."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vo3rl.report.page import write_report
from vo3rl.report.draw import bar_names
from vo3rl.report.panels import PANELS, StageMetrics, before_after, read_metrics

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run_folder(tmp_path: Path) -> Path:
    run = tmp_path / "tiny-demo"
    (run / "sft").mkdir(parents=True)
    (run / "rl").mkdir()
    (run / "rl" / "wandb").mkdir()
    sft = [{"step": s, "train/loss": 3.0 / s, "train/lr": 1e-3} for s in range(1, 6)]
    (run / "sft" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    rl = [{"step": 0, "eval/accuracy": 0.4, "eval/format": 0.7, "eval/n": 8}]
    rl += [{"step": s, "reward/total": 1.0 + 0.1 * s, "reward/accuracy": 0.3 + 0.05 * s, "reward/format": 0.9,
            "reward/format_json_errors": 0.0, "rollout/turns": 2.5, "rollout/tool_calls": 1.5,
            "time/rollout_s": 40.0, "time/train_s": 10.0, "perf/samples_per_s": 0.8,
            "train/kl": 0.001 * s, "batch/prompt_ids": ["a", "b"]} for s in range(1, 4)]
    rl += [{"step": 3, "eval/accuracy": 0.6, "eval/format": 1.0, "eval/n": 8}]
    text = "".join(json.dumps(r) + "\n" for r in rl)
    (run / "rl" / "metrics.jsonl").write_text(text + '{"step": 4, "reward/total": NaN, "x": "y"}\nnot json\n{"step": "5"}\n{"step": 4, "reward/tot')
    (run / "rl" / "wandb" / "metrics.jsonl").write_text("not a stage\n")
    return run


def test_series_skip_bad_lines_and_values(tmp_path):
    stage = read_metrics(_run_folder(tmp_path) / "rl" / "metrics.jsonl", "rl")
    assert stage.series["reward/total"] == ([1, 2, 3], [1.1, 1.2, 1.3])
    assert stage.series["eval/accuracy"] == ([0, 3], [0.4, 0.6])
    assert "batch/prompt_ids" not in stage.series and "x" not in stage.series
    assert (stage.skipped_lines, stage.skipped_values) == (3, 1)  # not json, a string step, a cut line; NaN
    assert before_after(stage) == {"eval/accuracy": (0.4, 0.6), "eval/format": (0.7, 1.0)}
    sft = StageMetrics("sft", {"eval/accuracy": ([0, 9], [0.0, 0.5]), "eval/seconds": ([0, 9], [70.0, 40.0]),
                               "eval/loss": ([5, 9], [0.4, 0.1]), "eval/n": ([0, 9], [8, 32])})
    pairs = before_after(sft)  # the held-out loss is first logged mid-training: no "before"
    assert sorted(pairs) == ["eval/accuracy", "eval/seconds"]
    assert bar_names(pairs) == ["eval/accuracy"]  # seconds would dwarf the scores: table only
    reward_panel = next(p for p in PANELS if p.name == "reward")
    assert reward_panel.keys(sorted(stage.series)) == ["reward/accuracy", "reward/format", "reward/total"]


def test_report_draws_each_stage_and_embeds_the_plots(tmp_path):
    run = _run_folder(tmp_path)
    page = write_report(run)
    assert page == run / "report" / "report.md"
    text = page.read_text()
    images = sorted(p.name for p in (run / "report").glob("*.png"))
    assert images == ["rl_accuracy.png", "rl_before_after.png", "rl_format.png", "rl_learner.png", "rl_phases.png",
                      "rl_reward.png", "rl_throughput.png", "rl_tools.png", "sft_loss.png"]
    assert all((run / "report" / name).read_bytes()[:8] == PNG_MAGIC for name in images)
    assert all(f"]({name})" in text for name in images)  # every plot is on the page
    assert "## sft" in text and "## rl" in text and "wandb" not in text
    assert "| eval/accuracy | 0.400 | 0.600 |" in text
    assert "Left out: 3 unreadable line(s), 1 non-numeric value(s)." in text


def test_report_of_a_folder_without_metrics_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "vo3rl.cli", "report", str(tmp_path)], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"vo3rl report: error: {tmp_path}: no metrics.jsonl below it (is it a run's output folder?)"
    assert list(tmp_path.iterdir()) == []  # nothing written
