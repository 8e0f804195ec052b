"""Parsers of model output: Video-o3 tool calls, answers, turn kinds; Open-o3 claims and intervals."""
import time

import pytest

from vo3rl.agent.parse import (
    JSON_ERROR_KINDS,
    TurnKind,
    classify_turn,
    final_answer,
    find_tags,
    parse_box,
    parse_choice,
    parse_claims,
    parse_interval,
    parse_timestamps,
    parse_tool_call,
    tags_balanced,
    think_text,
)


def grounding(payload: str) -> str:
    return f"<think>need a closer look</think>\n<grounding>{payload}</grounding>"


def test_valid_call_is_clipped_to_the_video():
    parsed = parse_tool_call(grounding('{"temporal_segment": [-5, 80], "sampling_strategy": "fine"}'), 60.0)
    assert parsed.ok and parsed.error is None
    assert (parsed.call.start_s, parsed.call.end_s) == (0.0, 60.0)
    assert parsed.call.requested == (-5.0, 80.0)
    assert parsed.call.strategy == "fine" and parsed.call.name == "video_crop"


def test_single_quotes_are_retried_and_last_grounding_wins():
    text = grounding('{"temporal_segment": [1, 2], "sampling_strategy": "coarse"}') + grounding(
        "{'temporal_segment': [10, 20.5], 'sampling_strategy': 'medium'}")
    parsed = parse_tool_call(text, None)
    assert (parsed.call.start_s, parsed.call.end_s, parsed.call.strategy) == (10.0, 20.5, "medium")


def test_json_is_read_between_first_and_last_brace():
    parsed = parse_tool_call(grounding('call: {"temporal_segment": [3, 7], "sampling_strategy": "fine"} ok'), 10)
    assert parsed.ok and (parsed.call.start_s, parsed.call.end_s) == (3.0, 7.0)


@pytest.mark.parametrize(
    "payload, kind",
    [
        ("no json here", "parse_error"),
        ('{"temporal_segment": [1, 2], "sampling_strategy": }', "parse_error"),
        ('["temporal_segment"]', "parse_error"),
        ('{"sampling_strategy": "fine"}', "missing_temporal_segment"),
        ('{"temporal_segment": [1, 5]}', "missing_sampling_strategy"),
        ('{"temporal_segment": [1, 5], "sampling_strategy": "ultra"}', "invalid_strategy"),
        ('{"temporal_segment": [1, 5], "sampling_strategy": 3}', "invalid_strategy"),
        ('{"temporal_segment": [1, 5, 9], "sampling_strategy": "fine"}', "segment_not_pair"),
        ('{"temporal_segment": 5, "sampling_strategy": "fine"}', "segment_not_pair"),
        ('{"temporal_segment": ["1", "5"], "sampling_strategy": "fine"}', "segment_not_pair"),
        ('{"temporal_segment": [NaN, 5], "sampling_strategy": "fine"}', "segment_not_pair"),
        ('{"temporal_segment": [1, 1e999], "sampling_strategy": "fine"}', "segment_not_pair"),
        ('{"temporal_segment": [true, 5], "sampling_strategy": "fine"}', "segment_not_pair"),
        ('{"temporal_segment": [9, 5], "sampling_strategy": "fine"}', "segment_reversed"),
        ('{"temporal_segment": [5, 5.9], "sampling_strategy": "fine"}', "segment_too_short"),
        ('{"temporal_segment": [59.5, 90], "sampling_strategy": "fine"}', "segment_too_short"),
        ('{"temporal_segment": [70, 90], "sampling_strategy": "fine"}', "segment_too_short"),
    ],
)
def test_each_validation_rule_names_its_error(payload, kind):
    parsed = parse_tool_call(grounding(payload), 60.0)
    assert not parsed.ok
    assert parsed.error.kind == kind
    assert parsed.error.message
    assert parsed.json_error == (kind in JSON_ERROR_KINDS)


def test_exactly_one_second_is_long_enough():
    assert parse_tool_call(grounding('{"temporal_segment": [5, 6], "sampling_strategy": "fine"}'), 60).ok


@pytest.mark.parametrize("segment", ["[0.4, 1.4]", "[0.1, 1.1]", "[2.3, 3.3]"])
def test_one_second_written_in_decimals_survives_float_rounding(segment):
    # 1.4 - 0.4 == 0.9999999999999999 in binary floating point; the model meant one second
    parsed = parse_tool_call(grounding(f'{{"temporal_segment": {segment}, "sampling_strategy": "fine"}}'), 60)
    assert parsed.ok, parsed.error


def test_a_hundredth_short_of_one_second_is_still_refused():
    parsed = parse_tool_call(grounding('{"temporal_segment": [0.4, 1.39], "sampling_strategy": "fine"}'), 60)
    assert not parsed.ok and parsed.error.kind == "segment_too_short"


def test_no_grounding_and_unclosed_grounding():
    assert parse_tool_call("<think>hm</think>", 10).error.kind == "no_grounding"
    unclosed = parse_tool_call('<grounding>{"temporal_segment": [1, 5], "sampling_strategy": "fine"}', 10)
    assert unclosed.ok  # the engine stops at the closing tag; a missing one is the format reward's business


def test_final_answer_is_the_last_complete_pair():
    assert final_answer("<answer>A</answer> then <answer> C </answer>") == "C"
    assert final_answer("<answer>A</answer><answer>B") == "A"
    assert final_answer("<answer>B") is None
    assert final_answer("") is None and final_answer(None) is None


def test_turn_classification_prefers_the_answer():
    assert classify_turn(grounding("{}") + "<answer>A</answer>") == TurnKind.ANSWER
    assert classify_turn(grounding("{}")) == TurnKind.TOOL_CALL
    assert classify_turn("<think>just thinking</think>") == TurnKind.NEITHER


@pytest.mark.parametrize("text, letter", [
    ("B", "B"), (" B ", "B"), ("B.", "B"), ("B. a blue cup", "B"), ("(B)", "B"), ("(B) a blue cup", "B"),
    ("[B]", "B"), ("B\n[4, 8]", "B"), ("b", None), ("Blue", None), ("The answer is B", None), ("", None),
    ("BB", None), ("(B", None),
])
def test_choice_forms(text, letter):
    assert parse_choice(text) == letter


def test_claims_with_several_boxes_and_times():
    text = ("<think>First <obj>dog</obj><box>[10, 20, 110, 140]</box> <box>[5,5,50,50]</box> at <t>3.5</t>s, then "
            "<obj>ball</obj><box>[200,40,240,80]</box>at<t>7</t>s.</think>")
    parsed = parse_claims(text)
    assert [c.name for c in parsed.claims] == ["dog", "ball"]
    assert parsed.claims[0].boxes == ((10, 20, 110, 140), (5, 5, 50, 50))
    assert (parsed.claims[0].time_s, parsed.claims[1].time_s) == (3.5, 7.0)
    assert parsed.errors == ()


def test_claim_defects_are_reported_not_raised():
    parsed = parse_claims("<obj>cup</obj><box>[50,5,10,40]</box><box>[1,2,3]</box>at<t>NaN</t>s "
                          "<obj>car</obj><box>[1,1,2,2]</box> <obj>a<obj>b</obj><box>[0,0,1,1]</box>at<t>2</t>s")
    kinds = [e.kind for e in parsed.errors]
    assert kinds == ["invalid_box", "invalid_box", "invalid_time", "missing_time"]
    assert parsed.claims[0].boxes == () and parsed.claims[0].time_s is None
    assert parsed.claims[1].boxes == ((1, 1, 2, 2),)
    assert parsed.claims[2].name == "b" and parsed.claims[2].time_s == 2.0  # the innermost opening counts


def test_box_rules():
    assert parse_box("[1, 2, 3, 4]") == (1, 2, 3, 4)
    assert parse_box("[3, 2, 1, 4]") is None  # x2 < x1
    assert parse_box("[1, 4, 3, 2]") is None  # y2 < y1
    assert parse_box("[1, 2, inf, 4]") is None and parse_box("1, 2, 3, 4") is None


def test_think_text_and_timestamps():
    text = "<think>at <t>1.5</t>s and <t>x</t></think><answer>From <t>3</t>s</answer><think><t>9</t></think>"
    assert think_text(text) == "at <t>1.5</t>s and <t>x</t>\n<t>9</t>"
    assert parse_timestamps(think_text(text)) == [1.5, 9.0]


@pytest.mark.parametrize("text, interval", [
    ("From <t>3.5</t>s to <t>9</t>s", (3.5, 9.0)),
    ("from <t> 3 </t> s to <t>4e1</t>s", (3.0, 40.0)),
    ('{"temporal_segment": [2, 6]}', (2.0, 6.0)),
    ("[1, 2.5]", (1.0, 2.5)),
    ("A\n[4, 8]", (4.0, 8.0)),
    ("[5, 5]", (5.0, 5.0)),
])
def test_temporal_answers(text, interval):
    assert parse_interval(text).interval == interval


@pytest.mark.parametrize("text, kind", [
    ("From <t>9</t>s to <t>3</t>s", "segment_reversed"),
    ('{"temporal_segment": [NaN, 6]}', "not_finite"),
    ("no times at all", "no_interval"),
    ("", "no_interval"),
])
def test_temporal_answer_errors(text, kind):
    assert parse_interval(text).error.kind == kind


def test_tag_pairing():
    assert tags_balanced("<t>1</t> <t>2</t>", "t")
    assert not tags_balanced("<t><t>1</t></t>", "t")  # nested
    assert not tags_balanced("</t><t>", "t")
    assert not tags_balanced("<t>1", "t")
    assert [(s.content_start, s.content_end) for s in find_tags("<a>x</a><a>yy</a>", "a")] == [(3, 4), (11, 13)]


def test_bytes_and_non_utf8_are_accepted():
    raw = grounding('{"temporal_segment": [1, 5], "sampling_strategy": "fine"}').encode() + b"\xff\xfe"
    assert parse_tool_call(raw, 10).ok
    assert final_answer(b"<answer>\xc3A</answer>") == "\ufffdA"


def test_huge_inputs_parse_fast():
    garbage = ("<grounding>{<obj></t>[1,<box>" * 8000)[:100_000]
    start = time.perf_counter()
    for parser in (lambda t: parse_tool_call(t, 60), final_answer, parse_claims, parse_timestamps, parse_interval,
                   think_text, parse_choice):
        parser(garbage)
    # A loose bound: catches quadratic behaviour (seconds), not a speed target.
    assert time.perf_counter() - start < 1.0
    big_number = grounding('{"temporal_segment": [' + "9" * 5000 + ', 1], "sampling_strategy": "fine"}')
    assert parse_tool_call(big_number, 60).error.kind == "parse_error"
    deep = grounding('{"temporal_segment": ' + "[" * 3000 + "]" * 3000 + "}")  # json recursion limit
    assert parse_tool_call(deep, 60).error.kind == "parse_error"
