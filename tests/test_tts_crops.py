"""Test-time scaling's pure part: evidence crops of a sampled answer (nearest frame, clamping, empty
and too many boxes), the crop as an engine clip, the rating prompt, and weights + vote end to end
on canned answer and rating texts with both rules. No engine, no video file: milliseconds."""
import numpy as np
import pytest

from vo3rl.agent.rating import CROP_SIDE_PX, crops_clip, evidence_crops, letterbox, nearest_frame, rating_text
from vo3rl.agent.voting import FALLBACK_WEIGHT, MAX_CROPS, confidence_weight, parse_rating, vote
from vo3rl.config.prompts import PromptTemplates
from vo3rl.data.schema import Sample
from vo3rl.rollout.tts import votable_answer
from vo3rl.video.types import Clip, SamplingSpec, VideoRef


def make_clip(times=(0.0, 2.0, 4.0, 6.0), height=56, width=84) -> Clip:
    """Frame k is filled with the value 10·k, so a crop tells which frame it came from."""
    frames = np.stack([np.full((height, width, 3), 10 * k, dtype=np.uint8) for k in range(len(times))])
    return Clip(frames, np.asarray(times, dtype=np.float64), np.arange(len(times)), height, width,
                len(times) // 2 * (height // 28) * (width // 28), 2.0, 8.0, SamplingSpec(num_frames=len(times)))


def claim(box, t):
    return f"<obj>cup</obj><box>[{box}]</box>at<t>{t}</t>s"


def test_nearest_frame_picks_the_closest_timestamp_and_the_earlier_on_a_tie():
    times = np.array([0.0, 2.0, 4.0, 6.0])
    assert [nearest_frame(times, t) for t in (0.0, 0.9, 1.1, 3.0, 5.9, 8.0)] == [0, 0, 1, 1, 3, 3]


def test_crop_comes_from_the_frame_nearest_the_claimed_time():
    (crop,) = evidence_crops("<think>" + claim("10, 5, 30, 25", 4.6) + "</think><answer>A</answer>", make_clip())
    assert crop.frame_index == 2 and crop.time_s == 4.6 and crop.box == (10, 5, 30, 25)
    assert crop.pixels.shape == (20, 20, 3) and (crop.pixels == 20).all()


@pytest.mark.parametrize("box, expected", [
    ("-5, -3, 20, 10", (0, 0, 20, 10)),          # off the top-left corner: clamped
    ("70, 40, 200, 90", (70, 40, 84, 56)),        # off the bottom-right: clamped to 84 x 56
    ("10.4, 5.6, 20.2, 15.1", (10, 5, 21, 16)),   # fractions widen to whole pixels
])
def test_boxes_are_clamped_to_the_frame(box, expected):
    (crop,) = evidence_crops(claim(box, 2), make_clip())
    assert crop.box == expected and crop.pixels.shape[:2] == (expected[3] - expected[1], expected[2] - expected[0])


@pytest.mark.parametrize("text", [
    "no claims at all <answer>A</answer>",
    claim("10, 10, 10, 30", 2),                   # zero width
    claim("100, 10, 120, 30", 2),                 # wholly right of an 84-px frame
    "<obj>cup</obj><box>[1, 2, 30, 40]</box>",   # no time
    claim("1, 2, 30, 40", 9.5),                   # after the video's 8 s
    claim("1, 2, 30, 40", -1),                    # before it
    "<obj>cup</obj><box>[30, 2, 1, 40]</box>at<t>2</t>s",  # reversed box: the parser drops it
])
def test_claims_without_a_usable_time_or_box_give_no_crop(text):
    assert evidence_crops(text, make_clip()) == []


def test_more_than_max_crops_is_seen_without_cutting_every_box():
    boxes = "".join(f"<box>[{i}, 0, {i + 5}, 5]</box>" for i in range(40))
    crops = evidence_crops(f"<obj>dots</obj>{boxes}at<t>0</t>s", make_clip())
    assert len(crops) == MAX_CROPS + 1
    assert confidence_weight(2, len(crops)) == FALLBACK_WEIGHT
    assert len(evidence_crops(claim("0, 0, 5, 5", 0) * MAX_CROPS, make_clip())) == MAX_CROPS


def test_crops_travel_as_one_video_of_one_temporal_patch_each():
    crops = evidence_crops(claim("0, 0, 84, 28", 6) + claim("0, 0, 2, 3", 0), make_clip())
    clip = crops_clip(crops)
    side = CROP_SIDE_PX
    assert clip.frames.shape == (4, side, side, 3) and side % 28 == 0
    assert clip.grid_thw == (2, side // 14, side // 14) and clip.n_vision_tokens == 2 * (side // 28) ** 2
    assert clip.frame_indices.tolist() == [3, 3, 0, 0]
    assert (clip.frames[0] == clip.frames[1]).all()  # a crop is one 2-frame patch: never mixed with the next
    assert (clip.frames[0, side // 2, :] == 30).all()  # frame 3's value across the middle row of the wide crop
    assert clip.spec.fps == 2.0 and clip.duration_s == 2.0


def test_letterbox_keeps_the_aspect_ratio():
    wide = np.full((10, 40, 3), 200, dtype=np.uint8)
    boxed = letterbox(wide, 84)
    rows = np.flatnonzero(boxed[:, 42, 0])
    assert boxed.shape == (84, 84, 3) and (boxed[:, 0] > 0).any() and 18 <= len(rows) <= 24  # 84 / 4 = 21 rows
    assert letterbox(np.full((1, 1, 3), 7, dtype=np.uint8), 28).max() == 7  # a single pixel still shows
    with pytest.raises(ValueError):
        crops_clip([])


def test_rating_text_carries_the_question_and_options():
    sample = Sample(id="s", question="What is on the table?", answer="B", video=VideoRef("v.mp4"),
                    options=["A. a cup", "B. a plate"])
    text = rating_text(sample, PromptTemplates())
    assert "What is on the table?" in text and "B. a plate" in text and "0" in text and "2" in text
    PromptTemplates().validate()  # the new template names only known placeholders


ANSWERS = [
    claim("0, 0, 20, 20", 0) + "<answer>A</answer>",           # 1 crop
    claim("0, 0, 20, 20", 2) + "<answer>B. plate</answer>",    # 1 crop
    claim("0, 0, 20, 20", 2) + "<answer>(B)</answer>",         # 1 crop
    "<think>nothing cited</think><answer>A</answer>",            # no crop: 0.2 without asking
    claim("0, 0, 20, 20", 4) + "no answer tag",                  # casts no vote
]
REPLIES = ["2", "0", "garbage", None, "1"]


def weights_of(texts, replies):
    clip = make_clip()
    counts = [len(evidence_crops(text, clip)) for text in texts]
    ratings = [parse_rating(r) if r is not None else None for r in replies]
    return [confidence_weight(r, c) for r, c in zip(ratings, counts)]


def test_weights_and_both_votes_end_to_end_on_canned_texts():
    answers = [votable_answer(text) for text in ANSWERS]
    assert answers == ["A", "B", "B", "A", None]
    weights = weights_of(ANSWERS, REPLIES)
    assert weights == [1.0, 0.2, 0.2, 0.2, 0.6]
    assert vote(answers, weights) == "A"   # 1.2 against 0.4
    assert vote(answers) == "A"            # 2 against 2: the tie goes to the answer sampled first
    # The rule matters: B's answers rated well, A's badly, and B wins the confidence vote only.
    flipped = weights_of(ANSWERS, ["0", "2", "2", None, "1"])
    assert flipped == [0.2, 1.0, 1.0, 0.2, 0.6]
    assert vote(answers, flipped) == "B" and vote(answers) == "A"


def test_free_form_answers_vote_by_their_text():
    assert votable_answer("<answer> a red cup </answer>") == "a red cup"
    assert votable_answer("<answer></answer>") is None and votable_answer(None) is None
