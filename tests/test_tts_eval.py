"""`vo3rl eval --tts N --vote RULE` below Ray: records carry the N answers, ratings and weights and
predict the voted answer, scored as the reward scored that answer; a benchmark summary counts voted
answers and keeps TTS rows apart from greedy ones; the command refuses a bad N or another protocol."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vo3rl.agent.trajectory import Trajectory
from vo3rl.data.schema import Sample
from vo3rl.evaluation.benchmark_run import identity_conflict, run_benchmark
from vo3rl.evaluation.benchmarks import BENCHMARKS
from vo3rl.evaluation.tts import evaluate_tts_records, evaluator
from vo3rl.rewards import RewardResult
from vo3rl.rollout.tts import TTSResult, votable_answer
from vo3rl.video.types import VideoRef

ROOT = Path(__file__).resolve().parents[1]


def sample(i):
    return Sample(id=f"s{i}", question="q?", answer="A", video=VideoRef(f"v{i}.mp4"), options=["A. x", "B. y"])


# Per sample: three sampled answers; the confidence weights make A win though B is the majority.
TEXTS = ["<answer>B</answer>", "<answer>A. x</answer>", "<answer>B</answer>"]
WEIGHTS = [0.2, 1.0, 0.6]


class FakeTTSRollout:
    def __init__(self):
        self.calls, self.last_skipped, self.last_stats = [], {}, []

    def tts(self, samples, n, vote):
        self.calls.append((len(samples), n, vote))
        self.last_stats = [{"rating_turns": 2 * len(samples)}]
        out = []
        for s in samples:
            trajectories = [Trajectory(sample_id=s.id, token_ids=np.arange(3, dtype=np.int32),
                                       roles=np.array([0, 1, 1], dtype=np.uint8), assistant_texts=[t]) for t in TEXTS]
            answers = [votable_answer(t) for t in TEXTS]
            weights = WEIGHTS if vote == "confidence" else [1.0] * 3
            prediction = "A" if vote == "confidence" else "B"
            out.append(TTSResult(s.id, vote, list(TEXTS), answers, [1, 1, 1], [0, 2, 1], weights, prediction,
                                 trajectories))
        return out


class FakeRewards:
    def score(self, trajectories, samples, progress):
        right = [float("<answer>A" in t.assistant_texts[0]) for t in trajectories]
        return [RewardResult(r, {"accuracy": r, "format": 1.0}) for r in right]


@pytest.mark.parametrize("vote, accuracy", [("confidence", 1.0), ("majority", 0.0)])
def test_records_predict_the_voted_answer_and_keep_all_answers(vote, accuracy, tmp_path):
    metrics, records = evaluate_tts_records(FakeTTSRollout(), FakeRewards(), [sample(0), sample(1)], 3, vote,
                                            tmp_path / "episodes.jsonl")
    assert metrics["eval/accuracy"] == accuracy and metrics["eval/sample_accuracy"] == pytest.approx(1 / 3)
    assert metrics["tts/n"] == 3 and metrics["tts/vote"] == vote and metrics["tts/rating_turns"] == 2
    record = records[0]
    assert record["prediction"] == ("A" if vote == "confidence" else "B")
    assert record["turns"] == [TEXTS[1] if vote == "confidence" else TEXTS[0]]  # the first answer voting for it
    assert record["components"]["accuracy"] == accuracy
    assert record["tts"]["answers"] == ["B", "A", "B"] and record["tts"]["ratings"] == [0, 2, 1]
    assert record["tts"]["accuracies"] == [0.0, 1.0, 0.0] and len(record["tts"]["weights"]) == 3
    assert [json.loads(line)["sample"] for line in (tmp_path / "episodes.jsonl").read_text().splitlines()] == ["s0", "s1"]


def test_benchmark_summary_counts_voted_answers_and_keeps_tts_rows_apart(tmp_path):
    tts = {"n": 3, "vote": "confidence"}
    identity = {"model": "/m", "data.eval": "/d.json", "tts": tts}
    rollout = FakeTTSRollout()
    summary, records = run_benchmark(rollout, FakeRewards(), [sample(i) for i in range(3)], BENCHMARKS.get("mlvu"),
                                     tmp_path, identity, chunk_samples=2, evaluate=evaluator(tts))
    assert rollout.calls == [(2, 3, "confidence"), (1, 3, "confidence")]
    assert summary["n"] == 3 and summary["accuracy"] == 1.0
    greedy = {"model": "/m", "data.eval": "/d.json"}
    assert identity_conflict(tmp_path, greedy) is not None and identity_conflict(tmp_path, identity) is None


def vo3rl_eval(tmp_path, recipe, *args):
    result = subprocess.run([sys.executable, "-m", "vo3rl.cli", "eval", str(ROOT / recipe), *args,
                             f"run.output_dir={tmp_path}/out"], capture_output=True, text=True, cwd=tmp_path)
    return result.returncode, result.stderr.strip().splitlines()


def test_tts_refuses_another_protocol_and_no_answers_in_one_line(tmp_path):
    code, lines = vo3rl_eval(tmp_path, "recipes/video_o3/rl.yaml", "--tts", "4", "rl.init_from=/x",
                             f"data.root={tmp_path}")
    assert code == 2 and "Traceback" not in "\n".join(lines)
    assert lines[-1].startswith("vo3rl eval: error: ") and "needs rollout.protocol open_o3, not 'video_o3'" in lines[-1]
    code, lines = vo3rl_eval(tmp_path, "recipes/open_o3_video/rl_gspo.yaml", "--tts", "0", "rl.init_from=/x",
                             f"data.root={tmp_path}")
    assert code == 2 and "--tts 0: test-time scaling needs at least 1 answer" in lines[-1]
    assert "protocol" not in lines[-1]
    assert not (tmp_path / "out").exists()


def test_tts_samples_at_temperature_one_and_reports_its_settings():
    from vo3rl.config.loader import load_recipe
    from vo3rl.orchestration.eval_run import eval_settings, tts_recipe

    recipe = load_recipe(ROOT / "recipes/open_o3_video/rl_gspo.yaml", ["rl.init_from=/x", "rollout.temperature=0.7"])
    sampled = tts_recipe(recipe)
    assert sampled.rollout.temperature == 1.0 and recipe.rollout.temperature == 0.7
    settings = eval_settings(sampled, "mcq", {"n": 8, "vote": "majority"})
    assert settings["tts/n"] == 8 and settings["tts/vote"] == "majority" and settings["rollout.temperature"] == 1.0
    assert "tts/n" not in eval_settings(recipe, "mcq")
