"""Answer rewards: option letters, ROUGE (the reference rouge-score package) with stemming, box and interval IoU, TG-MCQ, spatial answers."""
import pytest

from vo3rl.rewards.answer import (
    box_iou,
    choice_reward,
    free_form_reward,
    interval_iou,
    MAX_ROUGE_TOKENS,
    rouge_scores,
    spatial_answer_reward,
    temporal_answer_reward,
    tg_mcq_reward,
)


@pytest.mark.parametrize("answer, reward", [
    ("B", 1.0), ("B.", 1.0), ("B. blue", 1.0), ("(B)", 1.0), ("(B) blue", 1.0), ("[B]", 1.0),
    ("A", 0.0), ("b", 0.0), ("Blue", 0.0), ("the answer is B", 0.0), ("", 0.0), (None, 0.0),
])
def test_choice_reward(answer, reward):
    assert choice_reward(answer, "B") == reward


@pytest.mark.parametrize("prediction, reference, expected", [
    # Hand-worked from rouge-score's rules: lowercase, runs of a-z0-9, Porter stem when longer than 3.
    ("a man opens the red door", "a man opens the red door", (1.0, 1.0, 1.0)),
    ("blue sky", "red car", (0.0, 0.0, 0.0)),
    ("Running dogs", "run dog", (1.0, 1.0, 1.0)),  # running -> run, dogs -> dog; 3 letters stay
    ("A. Blue!", "a blue", (1.0, 1.0, 1.0)),  # case and punctuation are not tokens
    # nltk's Porter (rouge-score's) maps skies -> sky and dying -> die; the classic rules gave
    # "ski" and "dy", so the former hand-written stemmer scored these 0.5 and 2/3 / 0 / 2/3 lower.
    ("the skies", "the sky", (1.0, 1.0, 1.0)),
    # [he, was, die] vs [he, will, die]: 2 of 3 unigrams, no bigram, LCS "he die" = 2 -> F1 2/3.
    ("He was dying", "he will die", (2 / 3, 0.0, 2 / 3)),
    ("", "x", (0.0, 0.0, 0.0)),
])
def test_rouge_matches_hand_worked_reference_values(prediction, reference, expected):
    scores = rouge_scores(prediction, reference)
    assert list(scores) == ["rouge1", "rouge2", "rougeL"]
    assert all(type(value) is float for value in scores.values())
    assert tuple(scores.values()) == pytest.approx(expected)


def test_rouge_cuts_runaway_outputs_after_max_tokens():
    # Tokens past MAX_ROUGE_TOKENS are dropped, so an identical head scores 1.0 whatever follows.
    head = " ".join(f"w{i}" for i in range(MAX_ROUGE_TOKENS))
    tail = " ".join(f"extra{i}" for i in range(100))
    assert rouge_scores(f"{head}, {tail}", head) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}


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


def test_rouge_equals_the_packages_own_scorer_on_random_pairs():
    # Our scorer stems each word once and remembers it; it must score exactly as rouge-score does.
    import random

    from rouge_score.rouge_scorer import RougeScorer

    reference_scorer = RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    words = ("running skies dying happily generalization caresses ponies conditional agreed motoring cats "
             "feed the a of red door opens opened Person's fridge apples 3 x42 relational hopping").split()
    rng = random.Random(0)
    for _ in range(300):
        prediction = " ".join(rng.choice(words) for _ in range(rng.randint(0, 10)))
        reference = " ".join(rng.choice(words) for _ in range(rng.randint(1, 10)))
        expected = reference_scorer.score(reference, prediction)
        assert rouge_scores(prediction, reference) == {k: v.fmeasure for k, v in expected.items()}
