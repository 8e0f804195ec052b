"""A benchmark run keeps its rows as chunks finish, resumes from them, counts failed samples, and
never mixes in another evaluation's rows. Plain fake services: no Ray, no model."""
import json

import numpy as np
import pytest

from vo3rl.agent.trajectory import Trajectory
from vo3rl.data.schema import Sample
from vo3rl.evaluation.benchmark_run import evaluation_identity, identity_conflict, read_finished, run_benchmark
from vo3rl.evaluation.benchmarks import BENCHMARKS
from vo3rl.rewards import RewardResult
from vo3rl.video.types import VideoRef

MLVU = BENCHMARKS.get("mlvu")
IDENTITY = {"model": "/m", "data.eval": "/d.json"}


def sample(i):
    return Sample(id=f"s{i}", question="q?", answer="A", video=VideoRef(f"v{i}.mp4"), options=["A. x", "B. y"],
                  extra={"question_type": "even" if i % 2 == 0 else "odd"})


class FakeRollout:
    """Answers A (right) for even samples, B for odd; the video of any id in `unreadable` is skipped."""

    def __init__(self, unreadable=()):
        self.unreadable, self.calls, self.last_skipped = set(unreadable), [], {}

    def generate(self, samples, n_per_sample, mode):
        self.calls.append([s.id for s in samples])
        self.last_skipped = {s.id: "unreadable" for s in samples if s.id in self.unreadable}
        return [Trajectory(sample_id=s.id, token_ids=np.arange(3, dtype=np.int32), roles=np.array([0, 1, 1], dtype=np.uint8),
                           assistant_texts=[f"<answer>{'A' if int(s.id[1:]) % 2 == 0 else 'B'}</answer>"],
                           seconds=0.5 * (int(s.id[1:]) + 1))
                for s in samples if s.id not in self.unreadable]


class FakeRewards:
    def score(self, trajectories, samples, progress):
        return [RewardResult(float("A" in t.assistant_texts[0]), {"accuracy": float("A" in t.assistant_texts[0])})
                for t in trajectories]


def test_rows_are_kept_per_chunk_and_failed_samples_counted(tmp_path):
    rollout = FakeRollout(unreadable={"s3"})
    summary, records = run_benchmark(rollout, FakeRewards(), [sample(i) for i in range(5)], MLVU, tmp_path, IDENTITY,
                                     chunk_samples=2)
    assert rollout.calls == [["s0", "s1"], ["s2", "s3"], ["s4"]]
    assert summary["n"] == 4 and summary["failed"] == 1
    assert summary["accuracy"] == pytest.approx(3 / 5) and summary["accuracy_readable"] == pytest.approx(3 / 4)
    assert summary["task/even"] == 1.0 and summary["task/odd"] == 0.0 and summary["M-Avg"] == 0.5
    # What the episodes cost, per scored sample (s0, s1, s2, s4: 0.5, 1.0, 1.5, 2.5 s)
    assert summary["agent/turns"] == 1.0 and summary["agent/tool_calls"] == 0.0
    assert summary["agent/seconds"] == pytest.approx(1.375) and summary["agent/vision_tokens"] == 0.0
    rows, bad = read_finished(tmp_path / "episodes.jsonl")
    assert bad == 0 and [r["sample"] for r in rows] == ["s0", "s1", "s2", "s3", "s4"]
    assert rows[3] == {"sample": "s3", "failed": "unreadable"} and rows[0]["prediction"] == "A"
    assert json.loads((tmp_path / "evaluated.json").read_text()) == IDENTITY
    assert [r["sample"] for r in records] == ["s0", "s1", "s2", "s4"]


def test_a_rerun_runs_only_what_is_missing_and_mends_a_cut_line(tmp_path):
    samples = [sample(i) for i in range(4)]
    run_benchmark(FakeRollout(), FakeRewards(), samples[:3], MLVU, tmp_path, IDENTITY, chunk_samples=2)
    with (tmp_path / "episodes.jsonl").open("a") as fh:
        fh.write('{"sample": "s3", "quest')  # a run killed mid-write
    rollout = FakeRollout()
    summary, _ = run_benchmark(rollout, FakeRewards(), samples, MLVU, tmp_path, IDENTITY, chunk_samples=2)
    assert rollout.calls == [["s3"]]  # s0-s2 were finished; the cut line is run again
    assert summary["n"] == 4 and summary["accuracy"] == 0.5
    rows, bad = read_finished(tmp_path / "episodes.jsonl")
    assert bad == 0 and [r["sample"] for r in rows] == ["s0", "s1", "s2", "s3"]


def test_another_models_rows_are_never_mixed_in(tmp_path):
    run_benchmark(FakeRollout(), FakeRewards(), [sample(0)], MLVU, tmp_path, IDENTITY)
    other = {"model": "/other", "data.eval": "/d.json"}
    assert identity_conflict(tmp_path, IDENTITY) is None
    message = identity_conflict(tmp_path, other)
    assert message.startswith(f"{tmp_path} holds episodes of another evaluation") and "run.output_dir" in message
    with pytest.raises(ValueError, match="another evaluation"):
        run_benchmark(FakeRollout(), FakeRewards(), [sample(0)], MLVU, tmp_path, other)
    assert evaluation_identity("m", "d.json") == {"model": str(tmp_path.cwd() / "m"), "data.eval": str(tmp_path.cwd() / "d.json")}


def test_pending_is_what_an_earlier_run_left(tmp_path):
    from vo3rl.evaluation.benchmark_run import pending

    samples = [sample(i) for i in range(3)]
    assert pending(tmp_path, samples) == samples  # no earlier run
    run_benchmark(FakeRollout(unreadable={"s1"}), FakeRewards(), samples[:2], MLVU, tmp_path, IDENTITY)
    assert pending(tmp_path, samples) == [samples[2]]  # a failed sample is finished, not retried
    summary, _ = run_benchmark(None, None, samples[:2], MLVU, tmp_path, IDENTITY)  # nothing left: no rollout needed
    assert (summary["n"], summary["failed"]) == (1, 1)


def test_results_table_shows_fractions_x100_counts_and_costs_as_they_are():
    from vo3rl.evaluation.results import results_markdown

    page = results_markdown("mlvu", "/m", {"accuracy": 0.5, "n": 4, "agent/turns": 2.25, "agent/seconds": 0.75})
    assert "| accuracy | 50.0 |" in page and "| n | 4 |" in page
    assert "| agent/turns | 2.25 |" in page and "| agent/seconds | 0.75 |" in page
