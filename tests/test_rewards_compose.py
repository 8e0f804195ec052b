"""Reward composition: full Video-o3 and Open-o3 totals by hand, per-task weights, error isolation."""
import math

import pytest

from vo3rl.data.schema import DataType, KeyFrame, Sample, Task
from vo3rl.rewards import RewardConfig, score
from vo3rl.video.types import VideoRef

REF = VideoRef("/videos/a.mp4")
CALL = '<think>look</think>\n<grounding>{"temporal_segment": [8, 22], "sampling_strategy": "medium"}</grounding>'


def mcq(data_type=DataType.SINGLE_CLUE_TOOL, clues=((10.0, 20.0),)):
    return Sample("s", "What colour?", "B", REF, Task.MCQ, data_type, ["A. red", "B. blue"], 60.0, list(clues))


def test_video_o3_single_clue_tool_total():
    result = score(mcq(), [CALL, "<think>blue</think>\n<answer>B</answer>"], RewardConfig())
    # pred [8, 22] vs gt [10, 20]: IoU = IoP = 10/14, IoG = 1, DIoU = 10/14 (same centre).
    s_single = (10 / 14 + 10 / 14 + 1 + (10 / 14 + 1) / 2) / 4
    beta = 1.0 * (0.5 + 0.5 * s_single)  # k = 1: no decay
    assert result.errors == {}
    assert result.components["format"] == 1.0 and result.components["accuracy"] == 1.0
    assert result.components["tool_calls"] == 1.0
    assert result.components["clue_single"] == pytest.approx(s_single)
    assert result.components["bonus"] == pytest.approx(beta)
    assert result.total == pytest.approx(1 + 1 * (1 + beta))
    assert result.components["total"] == result.total


def test_video_o3_wrong_answer_gets_only_the_format():
    result = score(mcq(), [CALL, "<think>red</think>\n<answer>A</answer>"], RewardConfig())
    assert result.total == 1.0 and result.components["bonus_paid"] == 0.0


def test_video_o3_bad_format_keeps_accuracy_without_bonus():
    result = score(mcq(), [CALL, "<answer>B</answer>"], RewardConfig())
    assert result.components["format"] == 0.0
    assert result.total == 1.0


def test_video_o3_direct_answer_rows():
    answer = ["<think>easy</think>\n<answer>B</answer>"]
    assert score(mcq(DataType.SINGLE_CLUE_NO_TOOL), answer, RewardConfig()).total == pytest.approx(2.75)
    assert score(mcq(DataType.MULTI_CLUE_NO_TOOL), answer, RewardConfig()).total == pytest.approx(2.5)
    assert score(mcq(DataType.SINGLE_CLUE_TOOL), answer, RewardConfig()).total == pytest.approx(2.0)


def test_video_o3_temporal_grounding_row():
    sample = Sample("tg", "When?", "[4, 8]", REF, Task.TEMPORAL_GROUNDING, DataType.TEMPORAL_GROUNDING,
                    duration_s=30.0)
    result = score(sample, ['<think>x</think>\n<answer>{"temporal_segment": [2, 6]}</answer>'], RewardConfig())
    assert result.total == pytest.approx(1 + 2 / 6)


GROUNDED = "<think>The <obj>cup</obj><box>[20,10,100,50]</box>at<t>12</t>s is blue.</think><answer>B</answer>"


def open_o3_mcq():
    return Sample("o", "What colour?", "B", REF, Task.MCQ, options=["A. red", "B. blue"],
                  key_frames=[KeyFrame(10.0, {"cup": [(0.1, 0.1, 0.5, 0.5)]})])


def test_open_o3_total_with_the_sigma_schedule():
    cfg = RewardConfig(protocol="open_o3")
    # format 1, accuracy 1, spatial: |12 - 10| = 2 <= 3 and IoU 1 -> 1;
    # temporal: exp(-2^2 / (2 sigma^2)) with sigma 4 at the start and 1 at the end of training.
    start = score(open_o3_mcq(), [GROUNDED], cfg, progress=0.0, frame_size=(200, 100))
    end = score(open_o3_mcq(), [GROUNDED], cfg, progress=1.0, frame_size=(200, 100))
    assert start.errors == {}
    assert start.components["temporal"] == pytest.approx(math.exp(-4 / 32))
    assert end.components["temporal"] == pytest.approx(math.exp(-2))
    assert start.components["spatial"] == 1.0
    assert start.total == pytest.approx(3 + math.exp(-4 / 32))
    assert end.total == pytest.approx(3 + math.exp(-2))


def test_open_o3_temporal_task_uses_the_answer_interval():
    sample = Sample("t", "When does he sit?", "[4, 8]", REF, Task.TEMPORAL_GROUNDING)
    text = ("<think>he bends at <t>5</t>s; the <obj>man</obj><box>[1,1,9,9]</box>at<t>9</t>s</think>"
            "<answer>From <t>4</t>s to <t>8</t>s</answer>")
    result = score(sample, [text], RewardConfig(protocol="open_o3"), frame_size=(10, 10))
    assert result.components["temporal"] == 0.5  # 5 is inside [4, 8], 9 is not
    assert result.components["accuracy"] == 1.0 and result.components["format"] == 1.0
    assert result.components["spatial"] == 0.0  # no key frames
    assert result.total == pytest.approx(2.5)


def test_weights_per_task_and_data_type():
    cfg = RewardConfig(protocol="open_o3", weights={
        "default": {"format": 1.0, "accuracy": 2.0, "temporal": 1.0, "spatial": 1.0},
        "mcq": {"spatial": 0.0},
        "single_clue_tool": {"format": 0.5},
    })
    result = score(open_o3_mcq(), [GROUNDED], cfg, progress=1.0, frame_size=(200, 100))
    assert "spatial" not in result.components  # a zero weight is not computed
    assert result.total == pytest.approx(0.5 * 1 + 2.0 * 1 + math.exp(-2))


def test_a_failing_term_scores_zero_and_is_named():
    sample = open_o3_mcq()
    sample.task = "not_a_task"
    result = score(sample, [GROUNDED], RewardConfig(protocol="open_o3"), frame_size=(200, 100))
    assert "accuracy" in result.errors and result.components["accuracy"] == 0.0
    assert result.components["format"] == 1.0 and result.components["spatial"] == 1.0


def test_config_validation_is_loud():
    RewardConfig().validate()
    with pytest.raises(ValueError, match="protocol"):
        RewardConfig(protocol="video_o4").validate()
    with pytest.raises(ValueError, match="unknown terms"):
        RewardConfig(weights={"default": {"acuracy": 1.0}}).validate()


def test_no_turns_and_garbage_turns_score_zero_without_errors():
    for turns in ([], [""], [b"\xff\xfe<answer>"], ["<think>" * 1000]):
        result = score(mcq(), turns, RewardConfig())
        assert result.total == 0.0 and result.errors == {}


def test_free_form_without_judge_is_rouge():
    sample = Sample("f", "What happens?", "the cat sat down", REF, Task.FREE_FORM)
    result = score(sample, ["<think>x</think>\n<answer>The cat sat.</answer>"], RewardConfig())
    assert result.components["accuracy"] == pytest.approx((6 / 7 + 0.8 + 6 / 7) / 3)


def test_rewards_import_no_torch_ray_or_model_code():
    import subprocess
    import sys

    code = ("import sys, vo3rl.rewards, vo3rl.rewards.judge; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'ray', 'transformers', 'vllm') "
            "or m.startswith('vo3rl.model')]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
