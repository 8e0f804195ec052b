"""Trajectory records built in the Qwen chat layout: roles, video and tag spans, pickling, SFT examples."""
import math
import pickle

import numpy as np
import pytest
from video_fixtures import write_cfr_mp4

from vo3rl.agent.parse import ParseError, TurnKind
from vo3rl.agent.render import TokenBytes, TrajectoryBuilder, from_sft_example
from vo3rl.agent.tools import Observation, error_observation
from vo3rl.agent.trajectory import Role, tag_token_spans
from vo3rl.config.prompts import PromptTemplates
from vo3rl.data.chat import ChatTurn, SFTExample, VideoUse
from vo3rl.data.schema import Sample, Task
from vo3rl.video.budgets import preset
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import Clip, SamplingSpec, VideoRef

CALL = '<think>the cup shows up near 100s</think>\n<grounding>{"temporal_segment": [100, 130], "sampling_strategy": "medium"}</grounding>'
ANSWER = "<think>it is <obj>cup</obj><box>[10,20,30,40]</box>at<t>104</t>s, blue</think>\n<answer>B</answer>"


def fake_clip(n_frames, tokens_per_frame, start_s=None, end_s=None, duration_s=600.0):
    """A Clip with the token geometry of a real one and no real pixels (the builder never reads them)."""
    rows = 4
    cols = tokens_per_frame // rows
    times = np.linspace(start_s or 0.0, end_s or duration_s, n_frames)
    return Clip(frames=np.zeros((n_frames, 1, 1, 3), np.uint8), timestamps_s=times, frame_indices=np.arange(n_frames),
                height=28 * rows, width=28 * cols, n_vision_tokens=math.ceil(n_frames / 2) * rows * cols,
                video_fps=30.0, duration_s=duration_s, spec=SamplingSpec(start_s=start_s, end_s=end_s))


@pytest.fixture(scope="module")
def token_bytes(tokenizer):
    return TokenBytes(tokenizer)


def sample(**kw):
    fields = dict(id="s1", question="What colour is the cup?", answer="B", video=VideoRef("/videos/a.mp4"),
                  options=["A. red", "B. blue"], duration_s=600.0)
    fields.update(kw)
    return Sample(**fields)


def test_layout_matches_the_chat_template(tokenizer, token_bytes):
    glob, crop = fake_clip(8, 8), fake_clip(4, 12, 100.0, 130.0)
    builder = TrajectoryBuilder(tokenizer, sample(), token_bytes=token_bytes)
    builder.add_prompt(glob)
    builder.add_assistant(CALL)
    builder.add_observation(crop)
    builder.add_assistant(ANSWER)
    traj = builder.build()

    templates = PromptTemplates()
    first_text = ("Sampled at 0.01 fps: 8 frames from 0s to 600s.\nQuestion: What colour is the cup?\nOptions:\n"
                  "A. red\nB. blue\nAnswer with the letter of the correct option inside <answer></answer>.")
    messages = [
        {"role": "system", "content": templates.system},
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": first_text}]},
        {"role": "assistant", "content": CALL},
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Sampled at 0.13 fps: 4 frames from 100s to 130s."}]},
        {"role": "assistant", "content": ANSWER},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    pads = iter([glob.n_vision_tokens, crop.n_vision_tokens])
    text = "".join(part + ("<|video_pad|>" * next(pads) if i < 2 else "")
                   for i, part in enumerate(text.split("<|video_pad|>")))
    expected = tokenizer.encode(text.rstrip("\n"), add_special_tokens=False)
    assert traj.token_ids.tolist() == expected


def test_roles_loss_mask_and_video_spans(tokenizer, token_bytes):
    glob, crop = fake_clip(8, 8), fake_clip(4, 12, 100.0, 130.0)
    builder = TrajectoryBuilder(tokenizer, sample(), token_bytes=token_bytes)
    builder.add_prompt(glob)
    generated = tokenizer.encode(CALL, add_special_tokens=False)  # the engine stopped at </grounding>
    step = builder.add_assistant(generated, logprobs=[-0.5] * len(generated))
    assert step.kind == TurnKind.TOOL_CALL and step.tool.ok
    builder.add_observation(Observation(text="Sampled at 0.13 fps: 4 frames from 100s to 130s.", clip=crop))
    answer_ids = tokenizer.encode(ANSWER, add_special_tokens=False) + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    builder.add_assistant(answer_ids, logprobs=[-0.1] * len(answer_ids))
    traj = builder.build()

    ids, roles = traj.token_ids, traj.roles
    assert ids.dtype == np.int32 and roles.dtype == np.uint8 and traj.logprobs.dtype == np.float32
    assistant = np.flatnonzero(roles == Role.ASSISTANT)
    assert len(assistant) == len(generated) + len(answer_ids)
    assert tokenizer.decode(ids[roles == Role.ASSISTANT][: len(generated)]) == CALL
    # The <|im_end|> closing the tool turn was not generated: it is an observation token.
    first_obs = np.flatnonzero(roles == Role.OBSERVATION)[0]
    assert ids[first_obs] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert roles[-1] == Role.ASSISTANT and ids[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    # The prompt ends with the assistant header.
    assert tokenizer.decode(ids[: assistant[0]]).endswith("<|im_start|>assistant\n")
    assert np.all(np.isnan(traj.logprobs[roles != Role.ASSISTANT]))
    assert np.allclose(traj.logprobs[assistant], [-0.5] * len(generated) + [-0.1] * len(answer_ids))
    assert np.array_equal(traj.loss_mask(), roles == Role.ASSISTANT)
    traj.exceeded = True
    assert not traj.loss_mask().any()

    pad = tokenizer.convert_tokens_to_ids("<|video_pad|>")
    for video, clip, turn, role in ((traj.videos[0], glob, 0, Role.PROMPT), (traj.videos[1], crop, 1, Role.OBSERVATION)):
        assert video.end - video.start == video.n_vision_tokens == clip.n_vision_tokens
        assert np.all(ids[video.start : video.end] == pad) and np.all(roles[video.start : video.end] == role)
        assert ids[video.start - 1] == tokenizer.convert_tokens_to_ids("<|vision_start|>")
        assert ids[video.end] == tokenizer.convert_tokens_to_ids("<|vision_end|>")
        assert video.grid_thw == clip.grid_thw and video.turn == turn and video.n_frames == len(clip.frames)
    assert traj.videos[1].spec.start_s == 100.0 and traj.videos[1].ref == VideoRef("/videos/a.mp4")
    assert (ids == pad).sum() == traj.n_vision_tokens


def test_tag_spans_survive_bpe_merges(tokenizer, token_bytes):
    builder = TrajectoryBuilder(tokenizer, sample(), token_bytes=token_bytes)
    builder.add_prompt(fake_clip(2, 4))
    builder.add_assistant(CALL)
    builder.add_observation(fake_clip(2, 4, 100.0, 130.0))
    builder.add_assistant(ANSWER)
    traj = builder.build()
    pieces = tokenizer.convert_ids_to_tokens(traj.token_ids.tolist())
    answer = traj.tag_spans("answer")[-1]
    assert ">B" in pieces[answer.start : answer.end]  # Qwen merges '>' with the answer letter
    expected_text = {"think": None, "grounding": None, "answer": "<answer>B</answer>", "obj": "<obj>cup</obj>",
                     "box": "<box>[10,20,30,40]</box>", "t": "<t>104</t>"}
    for span in traj.tags:
        decoded = tokenizer.decode(traj.token_ids[span.start : span.end])
        inner = tokenizer.decode(traj.token_ids[span.start + 1 : span.end - 1])
        assert f"<{span.tag}>" in decoded and f"</{span.tag}>" in decoded  # covers the whole tag ...
        assert not (f"<{span.tag}>" in inner and f"</{span.tag}>" in inner)  # ... and no more tokens
        if expected_text[span.tag]:
            assert expected_text[span.tag] in decoded
        assert np.all(traj.roles[span.start : span.end] == Role.ASSISTANT)
    assert [(s.tag, s.turn) for s in traj.tags] == [
        ("think", 0), ("grounding", 0), ("think", 1), ("obj", 1), ("box", 1), ("t", 1), ("answer", 1)]


def test_tag_spans_from_byte_pieces():
    # "<a" "nswer>" "A</" "answer>" : one span covering all four pieces; offset shifts indices.
    pieces = [b"xx", b"<a", b"nswer>", b"A</", b"answer>", b"\n"]
    spans = tag_token_spans(pieces, turn=3, offset=100, tags=("answer",))
    assert [(s.start, s.end, s.turn) for s in spans] == [(101, 105, 3)]
    assert tag_token_spans([b"\xff<t>", b"1</t>"], 0, tags=("t",))[0].end == 2


def test_turn_records_and_forced_answer(tokenizer, token_bytes):
    builder = TrajectoryBuilder(tokenizer, sample(), token_bytes=token_bytes)
    builder.add_prompt(fake_clip(2, 4))
    step = builder.add_assistant('<think>a</think>\n<grounding>{"temporal_segment": [5, 5.5], '
                                 '"sampling_strategy": "fine"}</grounding>', close=False)
    builder.add_observation(error_observation(step.tool.error, builder.templates))
    assert builder.add_assistant("<think>hmm</think>", close=False).kind == TurnKind.NEITHER
    builder.add_observation("Reply with a tool call or an answer.", force_answer=True)
    builder.add_assistant(CALL, close=False)
    builder.add_observation(error_observation(ParseError("video_error", "unreadable."), builder.templates))
    traj = builder.build(exceeded=True, exceeded_reason="max_turns")
    assert traj.turns == 3 and len(traj.tool_calls) == 1 and traj.tool_calls[0].start_s == 100.0
    assert traj.turn_errors == ["segment_too_short", "no_action", "video_error"] and traj.n_errors == 3
    assert traj.exceeded and traj.exceeded_reason == "max_turns"
    assert builder.templates.force_answer.strip() in tokenizer.decode(traj.token_ids)
    assert traj.logprobs is None and len(traj.videos) == 1


def test_realistic_trajectory_pickles_small(tokenizer, token_bytes):
    # A long video at its full global budget plus four medium crops and five turns with log-probs.
    builder = TrajectoryBuilder(tokenizer, sample(), token_bytes=token_bytes)
    builder.add_prompt(fake_clip(768, 40))
    for k in range(4):
        ids = tokenizer.encode(CALL.replace("100, 130", f"{100 + 30 * k}, {130 + 30 * k}") * 3, add_special_tokens=False)
        builder.add_assistant(ids, logprobs=list(np.random.default_rng(k).normal(-1, 0.5, len(ids))))
        builder.add_observation(fake_clip(60, 136, 100.0 + 30 * k, 130.0 + 30 * k))
    ids = tokenizer.encode(ANSWER * 3, add_special_tokens=False)
    builder.add_assistant(ids, logprobs=[-0.2] * len(ids))
    traj = builder.build()
    assert len(traj) > 30_000 and traj.n_vision_tokens > 30_000
    blob = pickle.dumps(traj)
    assert len(blob) < 30_000, len(blob)
    back = pickle.loads(blob)
    assert np.array_equal(back.token_ids, traj.token_ids) and np.array_equal(back.roles, traj.roles)
    assert np.array_equal(back.logprobs, traj.logprobs, equal_nan=True)
    assert back.videos == traj.videos and back.tags == traj.tags and back.assistant_texts == traj.assistant_texts
    assert back.tool_calls == traj.tool_calls


def test_sft_example_renders_like_the_rollout(tokenizer, token_bytes, tmp_path):
    ref = VideoRef(write_cfr_mp4(str(tmp_path / "v.mp4"), n_frames=36, fps=4))
    s = sample(video=ref, duration_s=9.0)
    call = '<think>look</think>\n<grounding>{"temporal_segment": [2, 6], "sampling_strategy": "medium"}</grounding>'
    example = SFTExample(s, [ChatTurn("user", None, VideoUse("global")), ChatTurn("assistant", call),
                             ChatTurn("user", None, VideoUse("medium", 2.0, 6.0)),
                             ChatTurn("assistant", "<think>blue</think>\n<answer>B</answer>")])

    def clip_for(use):
        return sample_clip(ref, preset(use.preset).window(use.start_s, use.end_s))

    traj = from_sft_example(example, tokenizer, clip_for, token_bytes=token_bytes)

    builder = TrajectoryBuilder(tokenizer, s, token_bytes=token_bytes)
    builder.add_prompt(clip_for(VideoUse("global")))
    builder.add_assistant(call)
    builder.add_observation(clip_for(VideoUse("medium", 2.0, 6.0)))
    builder.add_assistant("<think>blue</think>\n<answer>B</answer>")
    assert np.array_equal(traj.token_ids, builder.build().token_ids)
    assert "Sampled at 2 fps: 8 frames from 2s to 6s." in tokenizer.decode(traj.token_ids)
    assert traj.tool_calls[0].strategy == "medium" and traj.videos[1].spec.start_s == 2.0
    assert traj.logprobs is None


def test_open_o3_prompt_lists_frame_times(tokenizer, token_bytes):
    s = sample(task=Task.TG_MCQ)
    builder = TrajectoryBuilder(tokenizer, s, protocol="open_o3", token_bytes=token_bytes)
    builder.add_prompt(fake_clip(4, 4, 0.0, 3.0, duration_s=3.0))
    text = tokenizer.decode(builder.build().token_ids)
    assert "You are a helpful assistant." in text and "taken at 0, 1, 2, 3 seconds" in text
    assert "Sampled at" not in text
