"""V-STAR: both chained conversations per row (what, then when / where in the chain's order) on a
scripted engine, their scores on hand-computed cases, and the benchmark's summary and results files."""
import json
import math

import pytest
from learner_fixtures import write_colour_mp4
from test_rollout_loop import PRESETS, ScriptedEngine

from vo3rl.agent.trajectory import Role
from vo3rl.config.reward import RewardConfig
from vo3rl.config.rollout import RolloutConfig
from vo3rl.data.readers import read_samples
from vo3rl.evaluation.benchmark_run import run_benchmark
from vo3rl.evaluation.benchmarks import BENCHMARKS
from vo3rl.evaluation.metrics import am, lgm
from vo3rl.evaluation.vstar import boxes_by_second, vstar
from vo3rl.rollout.service import RolloutService
from vo3rl.video.budgets import preset
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import VideoRef

WIDTH, HEIGHT = 200, 100  # the row's annotation frame (pixels)


def vstar_row(row_id, **kw):
    row = {"id": row_id, "vid": "v", "fps": 4, "width": WIDTH, "height": HEIGHT, "frame_count": 40,
           "question": "What does the player hold?", "answer": "a red ball", "object": "ball",
           "temporal_question": "When is the ball held?", "timestamps": [4.0, 6.0],
           "spatial_question": "Where is the ball then?", "spatial_question_2": "Where is the ball?",
           "bboxes": [{"4.0_16": {"xmin": 0, "ymin": 0, "xmax": 100, "ymax": 50}},
                      {"5.0_20": {"xmin": 50, "ymin": 25, "xmax": 150, "ymax": 75}}]}
    row.update(kw)
    return row


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vstar")
    write_colour_mp4(str(folder / "v.mp4"), seconds=10, width=56, height=56)
    return folder


def frame_size(video_dir):
    clip = sample_clip(VideoRef(str(video_dir / "v.mp4")), preset("open_o3", **PRESETS["open_o3"]))
    return clip.width, clip.height


def script_for(tokenizer, video_dir):
    """What: the right answer; when: [5, 7] (tIoU 1/3 with [4, 6]); where: second 5's box exactly,
    in pixels of the frame the model saw, and nothing for second 4 (m_vIoU 1/2)."""
    width, height = frame_size(video_dir)
    box = ", ".join(f"{v:g}" for v in (0.25 * width, 0.25 * height, 0.75 * width, 0.75 * height))
    what = "<think>I see it.</think><answer>a red ball</answer>"
    when = "<answer>From <t>5</t>s to <t>7</t>s</answer>"
    where = f"<answer><obj>ball</obj><box>[{box}]</box>at<t>5.2</t>s</answer>"

    def script(key, request):
        if request.turn == 0:
            return what
        last_question = tokenizer.decode(request.context).rsplit("<|im_start|>user", 1)[-1]
        return when if "When is the ball held?" in last_question else where
    return script


@pytest.fixture()
def rollout(tokenizer, video_dir):
    """RolloutService on the scripted engine, shaped as the driver's rollout group."""
    engine = ScriptedEngine(tokenizer, script_for(tokenizer, video_dir))
    service = RolloutService(engine, tokenizer, RolloutConfig(protocol="open_o3"), presets=PRESETS, cache=DecodeCache())

    class Group:
        last_skipped: dict = {}

        def generate(self, samples, n, mode):
            batch = service.generate(samples, n, mode)
            self.last_skipped = batch.skipped
            return batch.trajectories
    group = Group()
    group.engine = engine
    return group


def test_each_chain_asks_its_questions_in_order(tokenizer, rollout, video_dir, tmp_path):
    path = tmp_path / "vstar.json"
    path.write_text(json.dumps([vstar_row("q1"), vstar_row("q2", spatial_question_2="")]))
    samples = list(read_samples(str(path), "vstar", str(video_dir)))
    for chain, order in ((1, ["When is the ball held?", "Where is the ball then?"]),
                         (2, ["Where is the ball?", "When is the ball held?"])):
        trajectories = rollout.generate(samples, 1, f"vstar_chain{chain}")
        assert [t.sample_id for t in trajectories] == (["q1", "q2"] if chain == 1 else ["q1"])
        (first, *_) = trajectories
        assert first.turns == 3 and first.tool_calls == [] and len(first.videos) == 1
        asked = tokenizer.decode(first.token_ids[first.roles == Role.OBSERVATION].tolist())
        assert [asked.index(q) for q in order] == sorted(asked.index(q) for q in order)
        assert "From <t>start</t>s to <t>end</t>s" in asked  # the follow-up's answer format
    assert rollout.last_skipped == {"q2": "no_vstar_questions"}  # chain 2 needs spatial_question_2
    assert all(greedy for _, _, greedy, _ in rollout.engine.requests)


def test_benchmark_scores_both_chains_and_summarises_them(rollout, video_dir, tmp_path):
    path = tmp_path / "vstar.json"
    missing = vstar_row("gone", vid="nowhere")
    path.write_text(json.dumps([vstar_row("q1"), missing]))
    samples = list(read_samples(str(path), "vstar", str(video_dir)))
    bench = BENCHMARKS.get("vstar")
    rewards = type("Rewards", (), {"cfg": RewardConfig(protocol="open_o3")})()
    summary, records = run_benchmark(rollout, rewards, samples, bench, tmp_path / "out", {"model": "m"})
    (record,) = records
    parts = record["components"]
    assert parts["accuracy"] == 1.0 and parts["judge_used"] == 0.0  # no judge: ROUGE 1.0 >= 0.5
    for chain in (1, 2):
        assert parts[f"tiou_chain{chain}"] == pytest.approx(1 / 3)
        assert parts[f"viou_chain{chain}"] == pytest.approx(0.5)
    assert record["prediction"] == "a red ball" and record["chains"]["2"]["steps"] == ["what", "where", "when"]
    assert record["seconds"] > 0 and record["views"][0]["max_tokens"] == PRESETS["open_o3"]["max_tokens"]
    # One readable row of two: the failed one scores 0 in the headline set.
    assert summary["n"] == 1 and summary["failed"] == 1
    assert summary["accuracy"] == 0.5 and summary["accuracy_readable"] == 1.0
    assert summary["m_tIoU/chain1"] == pytest.approx(1 / 6) and summary["m_vIoU/chain2"] == pytest.approx(0.25)
    assert summary["mAM"] == pytest.approx(am(0.5, 1 / 6, 0.25))
    assert summary["mLGM"] == pytest.approx(lgm(0.5, 1 / 6, 0.25))
    rows = [json.loads(line) for line in (tmp_path / "out" / "episodes.jsonl").read_text().splitlines()]
    assert rows[1] == {"sample": "gone", "failed": "missing"}


def test_summary_on_hand_computed_rows():
    rows = [{"components": {"accuracy": 1.0, "judge_used": 1.0, "tiou_chain1": 0.5, "viou_chain1": 0.2,
                            "tiou_chain2": 0.3, "viou_chain2": 0.4}},
            {"components": {"accuracy": 0.0, "judge_used": 0.0, "tiou_chain1": 0.1, "viou_chain1": 0.0,
                            "tiou_chain2": 0.1, "viou_chain2": 0.0}}]
    out = vstar(rows, 0)
    # acc 0.5; chain 1: tIoU 0.3, vIoU 0.1; chain 2: tIoU 0.2, vIoU 0.2
    assert out["AM/chain1"] == pytest.approx((0.5 + 0.3 + 0.1) / 3)
    assert out["LGM/chain2"] == pytest.approx(-(math.log(0.5) + math.log(0.8) + math.log(0.8)) / 3)
    assert out["mAM"] == pytest.approx(((0.9 / 3) + (0.9 / 3)) / 2)
    assert out["judge_used"] == 0.5 and out["mAM_readable"] == out["mAM"]


def test_boxes_by_second_keeps_the_first_box_of_each_second_as_fractions():
    text = ("<obj>ball</obj><box>[0, 0, 50, 50]</box>at<t>3.9</t>s <obj>ball</obj><box>[50, 0, 100, 50]</box>at<t>3.1</t>s "
            "<obj>ball</obj><box>[0, 0, 10, 10]</box> <obj>cup</obj><box>[10, 10, 20, 20]</box>at<t>7</t>s")
    assert boxes_by_second(text, (100, 50)) == {3: (0.0, 0.0, 0.5, 1.0), 7: (0.1, 0.2, 0.2, 0.4)}
    assert boxes_by_second(None, (100, 50)) == {} and boxes_by_second("no boxes", None) == {}
