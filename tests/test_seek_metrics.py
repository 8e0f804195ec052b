"""The seeking metrics (vo3rl.evaluation.seeking) on hand-made episodes, and their place in every
evaluation's metrics (vo3rl.evaluation.episodes) beside the existing keys, whose values stay as they were."""
from __future__ import annotations

import numpy as np
import pytest

from vo3rl.agent.parse import ToolCall
from vo3rl.agent.trajectory import Role, Trajectory
from vo3rl.data.schema import DataType, Sample, Task
from vo3rl.evaluation.episodes import evaluate_records
from vo3rl.evaluation.seeking import SeekEpisode, all_clues_hit, clue_hit, clue_iog, seek_episode, seeking_metrics
from vo3rl.report.draw import bar_names
from vo3rl.rewards.compose import RewardResult
from vo3rl.rl.step_metrics import rollout_metrics
from vo3rl.video.types import VideoRef

# Times in seconds. One clue per scene-sized question unless said otherwise.
EPISODES = [
    SeekEpisode(True, ((17.5, 19.0),), ((16.0, 20.0),), 1.0),  # cropped the cue scene: hit, IoG 1
    SeekEpisode(True, ((5.25, 6.75), (21.25, 22.75)), ((4.0, 8.0),), 0.0),  # two clues, one found: IoG 0.5
    SeekEpisode(True, ((10.0, 11.5),), ((11.5, 14.0),), 0.0),  # touches the clue's end only: no hit
    SeekEpisode(True, ((10.0, 11.5),), (), 1.0),  # no call (a lucky answer): no hit
    SeekEpisode(False, ((4.0, 7.0),), (), 1.0),  # no-tool question answered from the overview
    SeekEpisode(False, ((4.0, 7.0),), ((0.0, 32.0),), 0.0),  # a needless crop: no-tool episodes never count as hits
    SeekEpisode(None, ((2.0, 3.0),), ((2.0, 3.0),), 0.5),  # temporal grounding: in neither group
    SeekEpisode(True, (), ((0.0, 4.0),), 1.0),  # a tool sample without clue annotations: accuracy only
]


def test_per_episode_measures():
    first, two, touching, none = EPISODES[:4]
    assert clue_hit(first) and clue_iog(first) == 1.0 and all_clues_hit(first)
    assert clue_hit(two) and clue_iog(two) == pytest.approx(0.5) and not all_clues_hit(two)
    assert not clue_hit(touching) and clue_iog(touching) == 0.0
    assert not clue_hit(none) and clue_iog(none) == 0.0 and not all_clues_hit(none)
    # Overlapping crops count once; two partial crops can cover both clues.
    assert clue_iog(SeekEpisode(True, ((17.5, 19.0),), ((16.0, 18.0), (17.0, 20.0)))) == pytest.approx(1.0)
    both = SeekEpisode(True, ((5.25, 6.75), (21.25, 22.75)), ((5.0, 6.0), (21.0, 22.75)))
    assert clue_iog(both) == pytest.approx((0.75 + 1.5) / 3.0) and all_clues_hit(both)


def test_seeking_metrics_over_hand_made_episodes():
    m = seeking_metrics(EPISODES)
    assert m == pytest.approx({
        "tool_calls": 6 / 8,
        "accuracy_tool": 3 / 5, "tool_samples_tool_calls": 4 / 5,
        "accuracy_no_tool": 1 / 2, "no_tool_samples_tool_calls": 1 / 2,
        # over the four tool episodes with clues: hits 2, both-clue hits 1, IoG 1 + 0.5 + 0 + 0
        "clue_hit_rate": 2 / 4, "clue_all_hit_rate": 1 / 4, "clue_iog_tool": 1.5 / 4,
    })


def test_empty_groups_leave_their_keys_out():
    assert seeking_metrics([]) == {}
    only_no_tool = seeking_metrics([EPISODES[4]])
    assert only_no_tool == {"tool_calls": 0.0, "accuracy_no_tool": 1.0, "no_tool_samples_tool_calls": 0.0}
    # Tool samples without clue time (zero-length or no annotations) give accuracy but no clue rates.
    assert "clue_hit_rate" not in seeking_metrics([EPISODES[7], SeekEpisode(True, ((3.0, 3.0),), ((2.0, 4.0),), 1.0)])


def _sample(sid: str, data_type: DataType, clues: list[tuple[float, float]]) -> Sample:
    return Sample(id=sid, question="What colour fills the whole screen during the striped scene?", answer="A",
                  video=VideoRef("videos/x.mp4"), task=Task.MCQ, data_type=data_type,
                  options=["A. red", "B. green"], duration_s=32.0, clues=clues)


def _trajectory(sid: str, crops: list[tuple[float, float]], answer: str) -> Trajectory:
    texts = [f'<think>t</think>\n<grounding>{{"temporal_segment": [{s}, {e}], "sampling_strategy": "fine"}}</grounding>\n'
             for s, e in crops] + [f"<think>t</think>\n<answer>{answer}</answer>\n"]
    roles = np.array([Role.PROMPT] * 5 + [Role.ASSISTANT] * 3 * len(texts), dtype=np.uint8)
    calls = [ToolCall(s, e, "fine", (s, e)) for s, e in crops]
    return Trajectory(sid, np.zeros(len(roles), dtype=np.int32), roles, assistant_texts=texts, tool_calls=calls)


def test_seek_episode_reads_sample_trajectory_and_reward():
    ep = seek_episode(_sample("a", DataType.MULTI_CLUE_TOOL, [(5.25, 6.75)]), _trajectory("a", [(4.0, 8.0)], "A"),
                      RewardResult(1.0, {"accuracy": 1.0, "format": 1.0}))
    assert ep == SeekEpisode(True, ((5.25, 6.75),), ((4.0, 8.0),), 1.0)
    grounding = seek_episode(_sample("g", DataType.TEMPORAL_GROUNDING, [(1.0, 2.0)]), _trajectory("g", [], "x"), RewardResult(0.0))
    assert grounding.needs_tool is None and grounding.accuracy == 0.0


class _Rollout:
    def __init__(self, trajectories):
        self.trajectories = trajectories

    def generate(self, samples, n, mode):
        return self.trajectories


class _Rewards:
    def __init__(self, results):
        self.results = results

    def score(self, trajectories, samples, progress):
        return self.results


def test_every_evaluation_adds_the_seeking_keys_and_keeps_the_others():
    samples = [_sample("t1", DataType.SINGLE_CLUE_TOOL, [(17.5, 19.0)]), _sample("t2", DataType.SINGLE_CLUE_TOOL, [(9.0, 10.5)]),
               _sample("n1", DataType.SINGLE_CLUE_NO_TOOL, [(4.0, 7.0)])]
    trajectories = [_trajectory("t1", [(16.0, 20.0)], "A"), _trajectory("t2", [(24.0, 28.0)], "B"), _trajectory("n1", [], "A")]
    # The reward's own clue_iog averages every scored episode; it must keep that value.
    results = [RewardResult(2.0, {"accuracy": 1.0, "format": 1.0, "clue_iog": 1.0, "tool_calls": 1.0}),
               RewardResult(1.0, {"accuracy": 0.0, "format": 1.0, "clue_iog": 0.0, "tool_calls": 1.0}),
               RewardResult(2.0, {"accuracy": 1.0, "format": 1.0, "clue_iog": 0.0, "tool_calls": 0.0})]
    metrics, records = evaluate_records(_Rollout(trajectories), _Rewards(results), samples)
    before = {f"eval/{name.split('/', 1)[-1]}": value for name, value in rollout_metrics(trajectories, results).items()}
    assert {key: metrics[key] for key in before} == before
    assert metrics["eval/clue_iog"] == pytest.approx(1 / 3) and metrics["eval/tool_calls"] == pytest.approx(2 / 3)
    assert metrics["eval/clue_hit_rate"] == 0.5 and metrics["eval/clue_iog_tool"] == 0.5
    assert metrics["eval/accuracy_tool"] == 0.5 and metrics["eval/accuracy_no_tool"] == 1.0
    assert metrics["eval/tool_samples_tool_calls"] == 1.0 and metrics["eval/no_tool_samples_tool_calls"] == 0.0
    assert metrics["eval/n"] == 3 and len(records) == 3 and "clue_hit_rate" not in records[0]
    # `vo3rl report` draws the new fractions as before/after bars and tables the call counts.
    added = sorted(set(metrics) - set(before) - {"eval/n", "eval/seconds"})
    assert bar_names({key: (0.0, 0.0) for key in added}) == [
        "eval/accuracy_no_tool", "eval/accuracy_tool", "eval/clue_all_hit_rate", "eval/clue_hit_rate", "eval/clue_iog_tool"]
