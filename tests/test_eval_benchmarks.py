"""Benchmarks: readers for the published layouts (Charades-STA lines, VideoMME's duration), each
benchmark's summary of episode records, the results files, and unknown names refused in one line."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vo3rl.data.readers import read_samples
from vo3rl.data.schema import Task
from vo3rl.data.skips import SkipLog
from vo3rl.evaluation.benchmarks import BENCHMARKS
from vo3rl.evaluation.results import write_results

ROOT = Path(__file__).resolve().parents[1]


def test_charades_sta_lines_become_grounding_samples_and_bad_lines_are_named(tmp_path):
    path = tmp_path / "charades_sta_test.txt"
    path.write_text("3MSZA 24.3 30.4##person turn a light on.\n"
                    "\n"
                    "3MSZA 0 6.1##a person is opening a door\n"
                    "BAD1 9 3##end before start\n"
                    "no separator here\n"
                    "X y 3##not a number\n")
    skips = SkipLog("t")
    samples = list(read_samples(str(path), "charades_sta", data_root=str(tmp_path), skips=skips))
    assert [s.id for s in samples] == ["charades_sta_test.txt:1", "charades_sta_test.txt:3"]
    first = samples[0]
    assert first.task is Task.TEMPORAL_GROUNDING and first.answer == "[24.3, 30.4]" and first.clues == [(24.3, 30.4)]
    assert first.video.path == str(tmp_path / "3MSZA.mp4") and '"person turn a light on."' in first.question
    assert skips.total == 3 and {"charades_sta_test.txt:4", "charades_sta_test.txt:5", "charades_sta_test.txt:6"} <= {
        sample_id for sample_id, _, _ in skips.examples}


def test_videomme_duration_category_is_kept(tmp_path):
    path = tmp_path / "videomme.json"
    path.write_text(json.dumps([{"question_id": "001-1", "videoID": "fFjv93ACGo8", "duration": "short",
                                 "task_type": "Counting Problem", "question": "How many?",
                                 "options": ["A. 1", "B. 2", "C. 3", "D. 4"], "answer": "C"}]))
    (sample,) = read_samples(str(path), "mcq", data_root=str(tmp_path))
    assert sample.extra == {"task_type": "Counting Problem", "duration": "short"} and sample.duration_s is None


def _record(accuracy, **groups):
    return {"components": {"accuracy": accuracy}, "groups": groups}


def test_mlvu_reports_per_task_and_m_avg_over_all_and_readable_samples():
    records = [_record(1.0, question_type="plotQA"), _record(1.0, question_type="plotQA"),
               _record(0.0, question_type="plotQA"), _record(1.0, question_type="needle")]
    out = BENCHMARKS.get("mlvu").summarise(records, 1)  # one sample's video could not be read
    assert out["n"] == 4 and out["failed"] == 1
    assert out["accuracy"] == pytest.approx(3 / 5) and out["accuracy_readable"] == pytest.approx(3 / 4)
    assert out["task/needle"] == 1.0 and out["task/plotQA"] == pytest.approx(2 / 3)
    assert out["M-Avg"] == pytest.approx((2 / 3 + 1.0) / 2)


def test_videomme_reports_short_medium_long():
    records = [_record(1.0, duration="short"), _record(0.0, duration="short"), _record(1.0, duration="long")]
    out = BENCHMARKS.get("videomme").summarise(records, 0)
    assert out["duration/short"] == 0.5 and out["duration/long"] == 1.0 and "duration/medium" not in out
    assert out["accuracy"] == pytest.approx(2 / 3) and "task/x" not in out


def test_charades_sta_reports_recall_at_iou_with_failed_samples_as_zero():
    out = BENCHMARKS.get("charades_sta").summarise([_record(0.8), _record(0.5), _record(0.2)], 1)
    assert out["R@0.3"] == 0.5 and out["R@0.5"] == 0.5 and out["R@0.7"] == 0.25
    assert out["mIoU"] == pytest.approx(1.5 / 4) and out["mIoU_readable"] == pytest.approx(0.5)
    assert out["R@0.3_readable"] == pytest.approx(2 / 3)


def test_results_files(tmp_path):
    metrics = {"n": 4, "failed": 1, "accuracy": 0.6, "M-Avg": 0.8333333}
    path = write_results(tmp_path / "eval" / "mlvu", "mlvu", "/ckpt/step_4/hf", metrics, {"protocol": "video_o3"})
    saved = json.loads(path.read_text())
    assert saved == {"benchmark": "mlvu", "model": "/ckpt/step_4/hf", "metrics": metrics,
                     "settings": {"protocol": "video_o3"}}
    table = (tmp_path / "eval" / "mlvu" / "results.md").read_text().splitlines()
    assert table[:2] == ["# mlvu", ""] and "| n | 4 |" in table and "| failed | 1 |" in table
    assert "| accuracy | 60.0 |" in table and "| M-Avg | 83.3 |" in table


def test_an_unknown_benchmark_is_one_line_listing_the_known_ones(tmp_path):
    result = subprocess.run([sys.executable, "-m", "vo3rl.cli", "eval", str(ROOT / "recipes/tiny_cpu/demo.yaml"),
                             "--benchmark", "mlvux", f"run.output_dir={tmp_path}/out"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("vo3rl eval: error: --benchmark: 'mlvux' is not one of charades_sta, longvideobench, lvbench, mlvu")
    assert not (tmp_path / "out").exists()
