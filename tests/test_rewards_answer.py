"""Answer rewards: option letters, ROUGE with stemming, box and interval IoU, TG-MCQ, spatial answers."""
import pytest

from vo3rl.rewards.answer import (
    box_iou,
    choice_reward,
    free_form_reward,
    interval_iou,
    rouge_scores,
    spatial_answer_reward,
    temporal_answer_reward,
    tg_mcq_reward,
)
from vo3rl.rewards.stem import stem


@pytest.mark.parametrize("answer, reward", [
    ("B", 1.0), ("B.", 1.0), ("B. blue", 1.0), ("(B)", 1.0), ("(B) blue", 1.0), ("[B]", 1.0),
    ("A", 0.0), ("b", 0.0), ("Blue", 0.0), ("the answer is B", 0.0), ("", 0.0), (None, 0.0),
])
def test_choice_reward(answer, reward):
    assert choice_reward(answer, "B") == reward


@pytest.mark.parametrize("word, expected", [
    # Examples from Porter's paper, one per rule family.
    ("caresses", "caress"), ("ponies", "poni"), ("cats", "cat"), ("feed", "feed"), ("agreed", "agre"),
    ("plastered", "plaster"), ("motoring", "motor"), ("sing", "sing"), ("conflated", "conflat"),
    ("hopping", "hop"), ("falling", "fall"), ("filing", "file"), ("happy", "happi"),
    ("relational", "relat"), ("conditional", "condit"), ("digitizer", "digit"), ("operator", "oper"),
    ("hopefulness", "hope"), ("triplicate", "triplic"), ("formative", "form"), ("goodness", "good"),
    ("revival", "reviv"), ("allowance", "allow"), ("adjustable", "adjust"), ("replacement", "replac"),
    ("adoption", "adopt"), ("communism", "commun"), ("effective", "effect"), ("probate", "probat"),
    ("rate", "rate"), ("cease", "ceas"), ("controll", "control"), ("roll", "roll"), ("running", "run"),
])
def test_porter_stems(word, expected):
    assert stem(word) == expected


def test_rouge_by_hand():
    # pred "the cat sat" vs ref "the cat sat down": 3 of 3 unigrams match, 4 in the reference
    # -> P = 1, R = 3/4, F1 = 6/7; bigrams 2 of 2 vs 3 -> F1 = 0.8; LCS 3 -> F1 = 6/7.
    scores = rouge_scores("The cat sat.", "the cat sat down")
    assert scores["rouge1"] == pytest.approx(6 / 7)
    assert scores["rouge2"] == pytest.approx(0.8)
    assert scores["rougeL"] == pytest.approx(6 / 7)
    assert free_form_reward("The cat sat.", "the cat sat down") == pytest.approx((6 / 7 + 0.8 + 6 / 7) / 3)


def test_rouge_l_uses_order_and_stemming_joins_forms():
    # "b a" vs "a b": unigrams all match (F1 1), no shared bigram, LCS 1 of 2 -> F1 0.5.
    assert rouge_scores("b a", "a b") == {"rouge1": 1.0, "rouge2": 0.0, "rougeL": 0.5}
    assert rouge_scores("Running dogs", "run dog")["rouge1"] == 1.0
    assert free_form_reward(None, "x") == 0.0 and free_form_reward("", "x") == 0.0


def test_interval_iou():
    assert interval_iou((0, 4), (2, 6)) == pytest.approx(2 / 6)
    assert interval_iou((0, 4), (4, 6)) == 0.0
    assert interval_iou((6, 2), (2, 6)) == 0.0  # reversed
    assert interval_iou((5, 5), (5, 5)) == 0.0  # empty
    assert interval_iou((0, float("nan")), (0, 1)) == 0.0 and interval_iou(None, (0, 1)) == 0.0


def test_box_iou():
    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert box_iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert box_iou((2, 0, 0, 2), (0, 0, 2, 2)) == 0.0  # x2 < x1
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert box_iou((0, 0, float("inf"), 1), (0, 0, 1, 1)) == 0.0 and box_iou(None, (0, 0, 1, 1)) == 0.0


def test_temporal_and_tg_mcq_answers():
    assert temporal_answer_reward("From <t>4</t>s to <t>8</t>s", "[2, 6]") == pytest.approx(2 / 6)
    assert temporal_answer_reward('{"temporal_segment": [2, 6]}', "[2, 6]") == 1.0
    assert temporal_answer_reward("From <t>8</t>s to <t>4</t>s", "[2, 6]") == 0.0
    assert tg_mcq_reward("B\nFrom <t>4</t>s to <t>8</t>s", "B\n[2, 6]") == (1.0, pytest.approx(1 / 3))
    assert tg_mcq_reward("A\nFrom <t>2</t>s to <t>6</t>s", "B\n[2, 6]") == (0.0, 1.0)
    assert tg_mcq_reward(None, "B\n[2, 6]") == (0.0, 0.0)


def test_spatial_answer_is_normalised_by_the_frame_size():
    # A 200x100 frame: pixels [20, 10, 100, 50] are the fractions [0.1, 0.1, 0.5, 0.5].
    claim = "<obj>cup</obj><box>[20,10,100,50]</box>at<t>2</t>s"
    assert spatial_answer_reward(claim, "[0.1, 0.1, 0.5, 0.5]", (200, 100)) == pytest.approx(1.0)
    assert spatial_answer_reward("[20, 10, 60, 50]", "[0.1, 0.1, 0.5, 0.5]", (200, 100)) == pytest.approx(0.5)
    assert spatial_answer_reward("somewhere left", "[0.1, 0.1, 0.5, 0.5]", (200, 100)) == 0.0
    assert spatial_answer_reward("[20, 10, 100, 50]", "[0.1, 0.1, 0.5, 0.5]", (0, 100)) == 0.0
