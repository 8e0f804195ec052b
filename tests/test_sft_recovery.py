"""SFT that teaches recovery: the per-turn not-trained flag (chat JSONL, Trajectory roles, loss and TDAM
masks) and the synthesizer's recovery chats (a refused call, the tool's error, the corrected call),
checked against the rollout loop driven with the same turns."""
from __future__ import annotations

import dataclasses
import filecmp
import hashlib
import json
import os

import numpy as np
import pytest
from learner_fixtures import BUDGETS, clip_for, three_video_example, write_colour_mp4

from vo3rl.agent.loop import LoopConfig, TurnOutput, run_episode
from vo3rl.agent.parse import NO_ACTION, parse_tool_call
from vo3rl.agent.prompts import render_error
from vo3rl.agent.render import TokenBytes, from_sft_example
from vo3rl.agent.tools import run_tool_call
from vo3rl.agent.trajectory import Role
from vo3rl.config.prompts import PromptTemplates
from vo3rl.config.synth import SynthConfig
from vo3rl.data.chat import ChatTurn, SFTExample, VideoUse, example_to_dict, read_examples, write_examples
from vo3rl.data.readers import read_sft
from vo3rl.data.skips import SkipLog
from vo3rl.data.synth import generate
from vo3rl.data.synth_plan import TOOL_TYPES
from vo3rl.data.synth_text import REFUSED_CALLS, refused_segment
from vo3rl.sft.data import load_sft_trajectories
from vo3rl.train.batch import n_trained_tokens, trained_tokens
from vo3rl.train.tdam import tdam_blocks
from vo3rl.video.budgets import preset, resolved_presets
from vo3rl.video.sampler import sample_clip

REFUSED = '<think>I need a look.</think>\n<grounding>{"temporal_segment": [4, 4], "sampling_strategy": "coarse"}</grounding>'
# Small views for the synthetic videos (as the demo's presets: no token floor), shared by SFT and rollout.
VIEWS = {name: {"min_tokens": 0, "max_tokens_per_patch": 16} for name in ("global", "coarse", "medium", "fine")}
VIEWS["global"]["max_frames"] = 16
FIXTURE_VIEWS = {name: BUDGETS for name in ("global", "coarse", "medium", "fine")}  # learner_fixtures.clip_for's
RECOVERY = dict(seed=3, n_train_videos=12, n_eval_videos=2, duration_s=24.0, width=64, height=64)


@pytest.fixture(scope="module")
def token_bytes(tokenizer):
    return TokenBytes(tokenizer)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_colour_mp4(str(tmp_path_factory.mktemp("recovery") / "v.mp4"))


def with_recovery(example: SFTExample) -> SFTExample:
    """`example` (three_video_example) with a refused, not-trained call and its error before the first call."""
    turns = list(example.turns)
    return SFTExample(example.sample, [turns[0], ChatTurn("assistant", REFUSED, trained=False), ChatTurn("user", None),
                                       *turns[1:]], example.protocol)


def all_trained(example: SFTExample) -> SFTExample:
    return SFTExample(example.sample, [dataclasses.replace(t, trained=True) for t in example.turns], example.protocol)


# -- the flag in the chat format -------------------------------------------------------------------


def test_flag_round_trips_and_is_written_only_when_false(tmp_path, video):
    flagged = with_recovery(three_video_example(video))
    plain = three_video_example(video)
    path = str(tmp_path / "chats.jsonl")
    write_examples(path, [flagged, plain])
    back = list(read_examples(path))
    assert back[0].turns == flagged.turns and back[1].turns == plain.turns
    assert [t.trained for t in back[0].turns] == [True, False, True, True, True, True, True, True]
    rows = [json.loads(line) for line in open(path)]
    assert rows[0]["turns"][1]["trained"] is False
    # Unflagged turns keep the layout they had before the flag existed (so their bytes do not change).
    assert all(list(turn) == ["role", "text", "video"] for turn in rows[1]["turns"])
    assert all("trained" not in turn for i, turn in enumerate(rows[0]["turns"]) if i != 1)


@pytest.mark.parametrize("value, role, message", [
    ("no", "assistant", "must be true or false"), (0, "assistant", "must be true or false"),
    (None, "assistant", "must be true or false"), (False, "user", "only assistant turns carry loss"),
])
def test_a_bad_flag_skips_its_row_and_is_counted(tmp_path, video, value, role, message):
    good = example_to_dict(three_video_example(video, sample_id="good"))
    bad = example_to_dict(three_video_example(video, sample_id="bad"))
    bad["turns"][0 if role == "user" else 1]["trained"] = value
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in (bad, good)) + "\n")
    skips = SkipLog()
    assert [e.sample.id for e in read_examples(str(path), skips)] == ["good"]
    assert dict(skips.counts) == {"bad_turn": 1}
    sample_id, reason, detail = skips.examples[0]
    assert (sample_id, reason) == ("bad", "bad_turn") and message in detail and "turns[" in detail


# -- the flag in the trajectory: in the context, out of the loss ---------------------------------


def test_flagged_turn_is_in_the_context_but_not_in_the_loss(tokenizer, token_bytes, video):
    base = three_video_example(video)
    flagged_example = with_recovery(base)
    render = lambda ex: from_sft_example(ex, tokenizer, clip_for(base.sample.video), token_bytes=token_bytes)  # noqa: E731
    flagged, unflagged, without = render(flagged_example), render(all_trained(flagged_example)), render(base)

    untrained = flagged.roles == Role.ASSISTANT_UNTRAINED
    first_turn = np.flatnonzero(unflagged.roles == Role.ASSISTANT)
    first_turn = first_turn[: np.argmax(np.diff(first_turn) > 1) + 1]  # the first run of assistant tokens
    assert np.array_equal(flagged.token_ids, unflagged.token_ids)
    assert np.array_equal(np.flatnonzero(untrained), first_turn)
    assert np.array_equal(flagged.roles[~untrained], unflagged.roles[~untrained])
    assert tokenizer.decode(flagged.token_ids[untrained].tolist()) == REFUSED + "<|im_end|>"
    # Out of the loss, nothing else: the loss mask, build_batch's targets and the normaliser agree.
    assert np.array_equal(flagged.loss_mask(), unflagged.loss_mask() & ~untrained)
    assert np.array_equal(trained_tokens(flagged), flagged.loss_mask())
    assert n_trained_tokens([flagged]) == n_trained_tokens([unflagged]) - int(untrained.sum())
    assert n_trained_tokens([flagged]) == n_trained_tokens([without])
    # The refused call is still seen: its text, its call error, and its tags are the trajectory's.
    assert flagged.assistant_texts[0] == REFUSED and flagged.turn_errors == ["segment_too_short"]
    assert [c.requested for c in flagged.tool_calls] == [c.requested for c in without.tool_calls]

    # TDAM: the same blocks as the chat without the recovery, shifted past the inserted turns. The
    # refused call is the first grounding, so the corrected one (no crop before it) adds no block.
    blocks = tdam_blocks(flagged)
    assert blocks == tdam_blocks(unflagged)
    inserted = len(flagged) - len(without)
    cut = int(first_turn[0])
    shift = lambda i: i + inserted if i >= cut else i  # noqa: E731
    assert blocks == [dataclasses.replace(b, q_start=shift(b.q_start), q_end=shift(b.q_end), k_start=shift(b.k_start),
                                          k_end=shift(b.k_end)) for b in tdam_blocks(without)]
    assert {b.rule for b in blocks} == {"answer", "grounding"}


# Recorded with the code before the flag existed: the learner fixtures' chat (global view, two crops,
# answer) renders to the same ids, roles, loss mask and TDAM blocks.
UNFLAGGED_DIGEST = "2376570e3c83e8e5"


def test_a_chat_without_flags_renders_as_before(tokenizer, token_bytes, video):
    example = three_video_example(video)
    traj = from_sft_example(example, tokenizer, clip_for(example.sample.video), token_bytes=token_bytes)
    assert set(np.unique(traj.roles)) == {Role.PROMPT, Role.ASSISTANT, Role.OBSERVATION}
    digest = hashlib.sha256()
    for array in (traj.token_ids.astype(np.int32), traj.roles.astype(np.uint8), traj.loss_mask()):
        digest.update(array.tobytes())
    digest.update(repr([dataclasses.astuple(b) for b in tdam_blocks(traj)]).encode())
    assert digest.hexdigest()[:16] == UNFLAGGED_DIGEST


def test_only_untrained_assistant_turns_is_skipped_as_no_assistant_turn(tokenizer, tmp_path, video):
    example = three_video_example(video)
    example.turns = example.turns[:2]
    example.turns[1].trained = False
    path = str(tmp_path / "chats.jsonl")
    write_examples(path, [example])
    split = load_sft_trajectories(path, tokenizer, resolved_presets({}), max_length=100_000)
    assert not split.train and dict(split.skips.counts) == {"no_assistant_turn": 1}


# -- the same context as the rollout -------------------------------------------------------------


class Replay:
    """A blocking engine that writes the given assistant texts, one per turn, closed with <|im_end|>
    (as `add_assistant` closes an SFT turn)."""

    def __init__(self, tokenizer, texts: list[str]):
        self.tokenizer, self.texts = tokenizer, list(texts)
        self.im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")

    def generate(self, context, clips, max_new_tokens, stop=()):
        text = self.texts.pop(0)
        return TurnOutput(self.tokenizer.encode(text, add_special_tokens=False) + [self.im_end], text)


def assert_renders_like_the_rollout(example: SFTExample, tokenizer, token_bytes, views: dict) -> None:
    """The SFT trajectory of `example` has the rollout's tokens, roles (but for the flagged turns) and
    errors when the rollout loop is driven with the chat's assistant turns."""
    sft = from_sft_example(example, tokenizer,
                           lambda use: sample_clip(example.sample.video, preset(use.preset, **views.get(use.preset, {}))
                                                   .window(use.start_s, use.end_s)), token_bytes=token_bytes)
    texts = [t.text for t in example.turns if t.role == "assistant"]
    rollout = run_episode(Replay(tokenizer, texts), example.sample, tokenizer, LoopConfig(max_turns=8, sampling=views))
    assert np.array_equal(sft.token_ids, rollout.token_ids)
    flagged = sft.roles == Role.ASSISTANT_UNTRAINED
    assert np.array_equal(sft.roles[~flagged], rollout.roles[~flagged])
    assert np.all(rollout.roles[flagged] == Role.ASSISTANT)
    assert sft.turn_errors == rollout.turn_errors and sft.tool_calls == rollout.tool_calls


@pytest.mark.parametrize("refused, error", [
    (REFUSED, None),
    ("<think>Hmm.</think>", render_error(NO_ACTION.message, PromptTemplates())),
])
def test_a_videoless_observation_is_the_rollouts_error(tokenizer, token_bytes, video, refused, error):
    example = three_video_example(video)
    example = SFTExample(example.sample, [example.turns[0], ChatTurn("assistant", refused, trained=False),
                                          ChatTurn("user", None), *example.turns[1:]])
    assert_renders_like_the_rollout(example, tokenizer, token_bytes, FIXTURE_VIEWS)
    traj = from_sft_example(example, tokenizer, clip_for(example.sample.video), token_bytes=token_bytes)
    expected = error or run_tool_call(parse_tool_call(refused, 10.0), example.sample.video, 10.0, PromptTemplates()).text
    assert expected in tokenizer.decode(traj.token_ids[traj.roles == Role.OBSERVATION].tolist())


@pytest.mark.parametrize("before", [1, 5])  # after a valid call (it needs its crop), after the answer
def test_a_videoless_user_turn_elsewhere_is_a_bad_example(tokenizer, token_bytes, video, before):
    example = three_video_example(video)
    example.turns.insert(before + 1, ChatTurn("user", None))
    with pytest.raises(ValueError, match="neither text nor video"):
        from_sft_example(example, tokenizer, clip_for(example.sample.video), token_bytes=token_bytes)


# -- recovery chats from the synthesizer ---------------------------------------------------------


@pytest.mark.parametrize("kind", list(REFUSED_CALLS))
def test_every_refused_call_kind_is_refused_by_the_parser(kind):
    for scene in ((0.0, 4.0), (8.0, 12.0), (20.0, 24.0)):
        start, end = refused_segment(kind, *scene, 24.0)
        call = json.dumps({"temporal_segment": [start, end], "sampling_strategy": "fine"})
        parsed = parse_tool_call(f"<grounding>{call}</grounding>", 24.0)
        assert not parsed.ok and parsed.error.kind in ("segment_too_short", "segment_reversed"), (kind, scene)


@pytest.fixture(scope="module")
def synth_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_recovery")
    sets = {}
    for name, fraction in (("none", 0.0), ("all", 1.0), ("half", 0.5), ("half_again", 0.5)):
        out = str(root / name)
        sets[name] = (out, generate(SynthConfig(recovery_fraction=fraction, **RECOVERY), out))
    return sets


def chats(out: str) -> list[SFTExample]:
    return list(read_sft(os.path.join(out, "sft_train.jsonl"), "chat", data_root=out))


def test_recovery_is_deterministic_and_changes_nothing_else(synth_sets):
    (none, none_manifest), (half, half_manifest), (again, _) = synth_sets["none"], synth_sets["half"], synth_sets["half_again"]
    assert filecmp.cmp(os.path.join(half, "sft_train.jsonl"), os.path.join(again, "sft_train.jsonl"), shallow=False)
    for out, _ in synth_sets.values():
        for name in ("rl_train.jsonl", "eval.jsonl"):
            assert filecmp.cmp(os.path.join(none, name), os.path.join(out, name), shallow=False), (out, name)
    plain, recovered = chats(none), chats(half)
    changed = [p.sample.id for p, r in zip(plain, recovered) if p.turns != r.turns]
    assert 0 < len(changed) < sum(p.protocol == "video_o3" and p.sample.data_type in TOOL_TYPES for p in plain)
    assert half_manifest["counts"]["recovery_chats"] == len(changed)
    assert "recovery_chats" not in none_manifest["counts"]  # the default keeps the manifest's counts as they were
    assert '"trained"' not in open(os.path.join(none, "sft_train.jsonl")).read()


def test_recovery_chats_refuse_then_correct(synth_sets):
    plain = {(e.sample.id, e.protocol): e for e in chats(synth_sets["none"][0])}
    recovered = chats(synth_sets["all"][0])
    n = 0
    for example in recovered:
        before = plain[(example.sample.id, example.protocol)]
        if example.protocol != "video_o3" or example.sample.data_type not in TOOL_TYPES:
            assert example.turns == before.turns
            continue
        n += 1
        t = example.turns
        # global view, the refused call (not trained), its error (rendered), the corrected call, then as before
        assert [(x.role, x.trained) for x in t[:4]] == [("user", True), ("assistant", False), ("user", True), ("assistant", True)]
        assert t[2].text is None and t[2].video is None and t[4:] == before.turns[2:]
        assert t[1].text.split("<grounding>")[0] == before.turns[1].text.split("<grounding>")[0]  # same reasoning
        assert t[3].text.split("<grounding>")[1] == before.turns[1].text.split("<grounding>")[1]  # the right call
        refused = parse_tool_call(t[1].text, example.sample.duration_s)
        assert not refused.ok and parse_tool_call(t[3].text, example.sample.duration_s).ok
        assert t[3].text.startswith("<think>The call was refused: ")
    assert n == synth_sets["all"][1]["counts"]["recovery_chats"] >= 4


def test_recovery_chats_render_like_the_rollout(synth_sets, tokenizer, token_bytes):
    recovered = [e for e in chats(synth_sets["all"][0]) if not all(t.trained for t in e.turns)]
    kinds = set()
    for example in recovered[:4]:
        assert_renders_like_the_rollout(example, tokenizer, token_bytes, VIEWS)
        text = example.turns[1].text
        refused = parse_tool_call(text, example.sample.duration_s)
        kinds.add(refused.error.kind)
        observation = run_tool_call(refused, example.sample.video, example.sample.duration_s, PromptTemplates())
        traj = from_sft_example(example, tokenizer, lambda use: sample_clip(
            example.sample.video, preset(use.preset, **VIEWS.get(use.preset, {})).window(use.start_s, use.end_s)),
            token_bytes=token_bytes)
        assert observation.clip is None and observation.text.startswith("The tool call failed: The segment [")
        assert observation.text in tokenizer.decode(traj.token_ids[traj.roles == Role.OBSERVATION].tolist())
    assert kinds <= {"segment_too_short", "segment_reversed"} and kinds


@pytest.mark.parametrize("bad, match", [
    (dict(recovery_fraction=1.5), "recovery_fraction"), (dict(recovery_fraction=-0.1), "recovery_fraction"),
    (dict(recovery_fraction=0.5, paper_formats=True), "paper_formats"),
])
def test_recovery_knobs_that_cannot_work_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        SynthConfig(**bad).validate()
