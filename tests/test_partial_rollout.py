"""Turns interrupted by a weight update (`vo3rl.rollout.partial`), without an engine: a resumed turn keeps
the tokens and log-probs sampled before the update, a discarded one starts again, a stop string split by
the interruption still ends the turn; and the builder records each turn's weight versions."""
from __future__ import annotations

from vo3rl.agent.loop import TurnRequest
from vo3rl.agent.render import TrajectoryBuilder
from vo3rl.data.schema import Sample
from vo3rl.rollout.partial import TurnInFlight, cut_at_stop
from vo3rl.video.types import VideoRef


def turn(max_new_tokens: int = 10, stop=("</tool_call>",)) -> TurnInFlight:
    return TurnInFlight("k", TurnRequest([1, 2, 3], [], [], max_new_tokens, tuple(stop), 0), False, 7, False,
                        first_version=4)


def test_a_resumed_turn_keeps_the_tokens_and_logprobs_sampled_before_the_update():
    t = turn()
    t.seen_ids, t.seen_logprobs, t.seen_text = [10, 11], [-0.5, -0.25], "ab"
    t.interrupt(resume=True)
    assert t.context == [1, 2, 3, 10, 11] and t.budget == 8 and t.interruptions == 1
    out = t.finish([12], [-2.0], "c", version=5)
    assert out.token_ids == [10, 11, 12] and out.logprobs == [-0.5, -0.25, -2.0] and out.text == "abc"
    assert out.versions == (4, 5)


def test_a_discarded_turn_starts_again_under_the_new_weights():
    t = turn()
    t.seen_ids, t.seen_logprobs, t.seen_text = [10, 11], [-0.5, -0.25], "ab"
    t.interrupt(resume=False)
    assert t.context == [1, 2, 3] and t.budget == 10
    out = t.finish([20, 21, 22], [-1.0, -1.0, -1.0], "xyz", version=5)
    assert out.token_ids == [20, 21, 22] and out.versions == (4, 5)


def test_an_uninterrupted_turn_is_the_engine_output_unchanged():
    out = turn().finish([5, 6], [-1.0, -2.0], "hi", version=4)
    assert out.token_ids == [5, 6] and out.logprobs == [-1.0, -2.0] and out.text == "hi" and out.versions == (4, 4)


def test_a_stop_string_split_by_the_interruption_still_ends_the_turn():
    pieces = {1: "<tool", 2: "_call>[0, 4]</tool_", 3: "call>", 4: " more", 5: " text"}

    def decode(ids):
        return "".join(pieces[i] for i in ids)

    text = decode([1, 2, 3, 4, 5])
    kept_chars = len(decode([1, 2]))  # the update came after token 2: "</tool_" | "call>"
    ids, logprobs, cut = cut_at_stop([1, 2, 3, 4, 5], [-1.0] * 5, text, ("</tool_call>",), kept_chars, decode)
    assert ids == [1, 2, 3] and logprobs == [-1.0] * 3 and cut.endswith("</tool_call>")
    # a stop string wholly after the boundary was vLLM's to see: nothing to cut
    assert cut_at_stop([1, 2, 3], None, decode([1, 2, 3]), ("</tool_call>",), 3, decode)[0] == [1, 2, 3]


def test_the_builder_records_each_turns_weight_versions(tokenizer):
    sample = Sample(id="s", question="q?", answer="A", video=VideoRef("v.mp4"), options=["A. x", "B. y"])
    builder = TrajectoryBuilder(tokenizer, sample)
    builder.add_prompt(None, text="q?")
    ids = tokenizer.encode("<think>x</think><answer>A</answer>", add_special_tokens=False)
    builder.add_assistant(ids, [-1.0] * len(ids), versions=(2, 3))
    trajectory = builder.build()
    assert trajectory.turn_versions == [(2, 3)] and trajectory.oldest_version == 2
    assert TrajectoryBuilder(tokenizer, sample).build().oldest_version is None
