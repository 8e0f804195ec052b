"""Format rewards: Video-o3's strict multi-turn form and JSON-error deduction; Open-o3's three levels."""
import pytest

from vo3rl.rewards.format import open_o3_format, strict_turn, video_o3_format

CALL = '<think>look</think>\n<grounding>{"temporal_segment": [10, 20], "sampling_strategy": "medium"}</grounding>'
ANSWER = "<think>seen</think>\n<answer>B</answer>"


@pytest.mark.parametrize("turn, action, ok", [
    (CALL, "grounding", True),
    (CALL.replace("\n", ""), "grounding", True),  # nothing between the tags is allowed
    (CALL.replace("\n", "\n\n"), "grounding", False),  # two newlines are not
    (CALL.replace("\n", " "), "grounding", False),
    (CALL + "\n", "grounding", True),
    ("Sure! " + CALL, "grounding", False),
    (CALL + " more", "grounding", False),
    (ANSWER, "answer", True),
    (ANSWER, "grounding", False),
    ("<think>a <answer>B</answer></think>\n<answer>B</answer>", "answer", False),
    ("<think>a</think>\n<answer>B</answer><answer>C</answer>", "answer", False),
    ("<think>a</think>\n<answer>B", "answer", False),
    ("", "answer", False),
])
def test_strict_turn(turn, action, ok):
    assert strict_turn(turn, action) is ok


def test_perfect_trajectory_scores_one():
    result = video_o3_format([CALL, CALL, ANSWER], 60.0)
    assert (result.score, result.well_formed, result.json_errors, result.turns) == (1.0, True, 0, 3)
    assert video_o3_format([ANSWER]).score == 1.0  # a direct answer


def test_json_error_deduction():
    # Three turns, one call missing its strategy: E = 1, T = 3 -> 1 - 1/3.
    missing = '<think>x</think>\n<grounding>{"temporal_segment": [10, 20]}</grounding>'
    assert video_o3_format([CALL, missing, ANSWER], 60.0).score == pytest.approx(2 / 3)
    # Two JSON problems over three turns -> 1/3; a too-short segment is not a JSON problem.
    broken = "<think>x</think>\n<grounding>{oops}</grounding>"
    assert video_o3_format([broken, missing, ANSWER], 60.0).score == pytest.approx(1 / 3)
    short = '<think>x</think>\n<grounding>{"temporal_segment": [10, 10.5], "sampling_strategy": "fine"}</grounding>'
    assert video_o3_format([short, ANSWER], 60.0).score == 1.0
    # Only calls count, so E <= T - 1: one broken call then the answer -> 1 - 1/2.
    assert video_o3_format([broken, ANSWER], 60.0).score == pytest.approx(0.5)


def test_malformed_trajectories_score_zero():
    assert video_o3_format([CALL, CALL]).score == 0.0  # never answered (an exceeded trajectory)
    assert video_o3_format([ANSWER, ANSWER]).score == 0.0  # an answer before the end
    assert video_o3_format(["<think>x</think>", ANSWER]).score == 0.0  # a turn with neither
    assert video_o3_format([]).score == 0.0


def test_open_o3_levels():
    plain = "<think>it is blue</think><answer>B</answer>"
    grounded = "<think>the <obj>cup</obj><box>[1,2,3,4]</box>at<t>2</t>s is blue</think><answer>B</answer>"
    assert open_o3_format(plain) == 0.5
    assert open_o3_format(grounded) == 1.0
    assert open_o3_format("<think>no answer</think>") == 0.0
    assert open_o3_format("<answer>B</answer>") == 0.0
    assert open_o3_format(grounded.replace("</obj>", "")) == 0.0  # unpaired obj
    assert open_o3_format(grounded.replace("</box>", "</box></box>")) == 0.0
    assert open_o3_format(grounded.replace("<t>2</t>", "<t><t>2</t></t>")) == 0.0  # nested t
    # Temporal tasks need two timestamps.
    assert open_o3_format(grounded, temporal_task=True) == 0.5
    two_t = grounded.replace("<answer>B</answer>", "<answer>From <t>1</t>s to <t>3</t>s</answer>")
    assert open_o3_format(two_t, temporal_task=True) == 1.0
