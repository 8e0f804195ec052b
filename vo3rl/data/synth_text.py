"""Words for the synthetic set: questions, Samples, and the SFT trajectories of both protocols.

Video-o3 trajectories: a question needing the tool gets one `<grounding>` per clue, over the clue's
scene at `crop_strategy`, each followed by an observation turn (text None: rendered by the
protocol's templates), then the answer; a no-tool question is answered at once. A recovery chat
(`recovery_fraction`) first makes a call the crop tool refuses (`REFUSED_CALLS`), flagged not
trained, then an observation turn with neither text nor video (rendered as the tool's error, as
the rollout shows it), then the corrected call. In "look" style the
reasoning first says where the named scene lies ("The striped scene runs from 8 s to 12 s."): the
step from what the overview shows to the seconds the crop needs. Open-o3 examples are
one turn whose think cites each clue as `<obj>region</obj><box>[x1,y1,x2,y2]</box>at<t>t</t>s`,
boxes in pixels of the open_o3 view's resized frame, t the clue's key-frame time.
"""
from __future__ import annotations

import json
import zlib

import numpy as np

from vo3rl.config.synth import SynthConfig
from vo3rl.data.chat import ChatTurn, SFTExample, VideoUse
from vo3rl.data.mcq import format_options
from vo3rl.data.rowfields import SEEKER_SOURCE_NAMES, interval_text, seconds_text
from vo3rl.data.schema import DataType, KeyFrame, Sample, Task
from vo3rl.data.synth_plan import TOOL_TYPES, Event, QuestionPlan, VideoPlan
from vo3rl.video.budgets import preset
from vo3rl.video.resize import frame_size_for_budget, patch_budget
from vo3rl.video.types import VideoRef


def _phrase(region: str) -> str:
    return "the whole screen" if region == "whole screen" else f"the {region} of the screen"


def _span(plan: VideoPlan, scene: int) -> tuple[float, float]:
    s = plan.scenes[scene]
    return s.first_frame / plan.fps, s.end_frame / plan.fps


def _when(plan: VideoPlan, scene: int, style: str) -> str:
    if style == "scene":
        return f"while the background is {plan.scenes[scene].background}"
    if style == "look":
        return f"during the {plan.scenes[scene].look} scene"
    if style == "marked":
        return f"during the {plan.scenes[scene].background} scene"
    if style == "signed":
        return "during the patterned scene"
    start, end = _span(plan, scene)
    return f"between {seconds_text(start)} s and {seconds_text(end)} s"


def _locate(plan: VideoPlan, scene: int, style: str) -> str:
    """In "look" and "marked" style, the sentence placing the named scene in time (with a trailing
    space); else "" (the question already gives the time, or the background names the scene as it
    does today). "marked" names the clock look it read first: the look is what tells the time."""
    start, end = _span(plan, scene)
    span = f"from {seconds_text(start)} s to {seconds_text(end)} s"
    s = plan.scenes[scene]
    if style == "look":
        return f"The {s.look} scene runs {span}. "
    if style == "marked":
        return f"The {s.background} scene is the {s.look} one, {span}. "
    if style == "signed":
        return f"The patterned scene is the {s.look} one, {span}. "
    return ""


def question_text(plan: VideoPlan, q: QuestionPlan, style: str) -> str:
    if q.data_type is DataType.TEMPORAL_GROUNDING:
        return f"When does {_phrase(q.region)} turn {q.clues[0].colour}? Give the start and end in seconds."
    whens = [_when(plan, e.scene, style) for e in q.clues]
    if style in ("marked", "signed") and len(whens) > 1:  # one mark for all: "during the 2 maroon scenes, in order"
        mark = plan.scenes[q.clues[0].scene].background if style == "marked" else "patterned"
        return f"What colours fill {_phrase(q.region)} during the {len(whens)} {mark} scenes, in order?"
    if len(whens) == 1:
        return f"What colour fills {_phrase(q.region)} {whens[0]}?"
    return f"What colours fill {_phrase(q.region)} {' and '.join(whens)}, in that order?"


def event_interval(plan: VideoPlan, e: Event) -> tuple[float, float]:
    """The event's span in seconds: [first frame's start, last frame's end)."""
    return e.first_frame / plan.fps, (e.first_frame + e.n_frames) / plan.fps


def key_time(plan: VideoPlan, e: Event) -> float:
    """The time of the event's middle frame, in seconds (a real frame time)."""
    return (e.first_frame + (e.n_frames - 1) // 2) / plan.fps


def build_sample(plan: VideoPlan, q: QuestionPlan, index: int, video_path: str, style: str) -> Sample:
    w, h = plan.width, plan.height
    key_frames = [
        KeyFrame(key_time(plan, e), {e.region: [(e.box_px[0] / w, e.box_px[1] / h, e.box_px[2] / w, e.box_px[3] / h)]})
        for e in q.clues
    ]
    clues = [event_interval(plan, e) for e in q.clues]
    grounding = q.data_type is DataType.TEMPORAL_GROUNDING
    return Sample(
        id=f"{plan.name}_q{index}",
        question=question_text(plan, q, style),
        answer=interval_text(*clues[0]) if grounding else format_options(q.options)[q.answer_index][0],
        video=VideoRef(video_path),
        task=Task.TEMPORAL_GROUNDING if grounding else Task.MCQ,
        data_type=q.data_type,
        options=[] if grounding else format_options(q.options),
        duration_s=plan.duration_s,
        clues=clues,
        key_frames=key_frames,
        source=SEEKER_SOURCE_NAMES[q.data_type],
        extra={"clue_texts": [f"{e.colour} fills the {e.region}" for e in q.clues]},
    )


def _grounding(start: float, end: float, strategy: str) -> str:
    call = json.dumps({"temporal_segment": [float(seconds_text(start)), float(seconds_text(end))], "sampling_strategy": strategy})
    return f"<grounding>{call}</grounding>\n"


# Calls the crop tool refuses (vo3rl.agent.parse.parse_tool_call) -> why, in the corrected call's words.
# "empty": the scene's start twice (the `[4.0, 4.0]` the demo's SFT model wrote, docs/demo.md);
# "past_end": the scene's length from the video's end (clipped to nothing); "reversed": end first.
REFUSED_CALLS: dict[str, str] = {"empty": "the segment was empty", "past_end": "the segment lay past the video's end",
                                 "reversed": "the segment ended before it started"}
_RECOVERY_STREAM = 2  # second seed word of the recovery draw; 0 and 1 seed the splits' videos (synth.SPLITS)


def refused_segment(kind: str, start_s: float, end_s: float, duration_s: float) -> tuple[float, float]:
    """The segment, in seconds, of a `kind` refused call aimed at the scene [start_s, end_s]."""
    if kind == "empty":
        return start_s, start_s
    if kind == "past_end":
        return duration_s, duration_s + end_s - start_s
    if kind == "reversed":
        return end_s, start_s
    raise ValueError(f"unknown refused call {kind!r}; known: {tuple(REFUSED_CALLS)}")


def refused_call_kind(sample: Sample, cfg: SynthConfig) -> str | None:
    """The REFUSED_CALLS kind a recovery chat of `sample` opens with, or None (no recovery). Drawn from
    a generator of its own (seed, sample id), so the videos and every other chat stay as they are."""
    if cfg.recovery_fraction <= 0:
        return None
    rng = np.random.default_rng([cfg.seed, _RECOVERY_STREAM, zlib.crc32(sample.id.encode())])
    if rng.random() >= cfg.recovery_fraction:
        return None
    return list(REFUSED_CALLS)[int(rng.integers(len(REFUSED_CALLS)))]


def _recovery_turns(kind: str, lead: str, span: tuple[float, float], duration_s: float,
                    strategy: str) -> tuple[list[ChatTurn], str]:
    """The refused call (not trained) and the tool's error before the corrected call, and the corrected
    call's reasoning; `span` is the clue scene in seconds, `duration_s` the video's length."""
    start, end = refused_segment(kind, *span, duration_s)
    turns = [ChatTurn("assistant", f"<think>{lead}</think>\n{_grounding(start, end, strategy)}", trained=False),
             ChatTurn("user", None)]  # no text, no video: rendered as the tool's error for that call
    scene = f"{seconds_text(span[0])} s to {seconds_text(span[1])} s"
    fix = f"The call was refused: {REFUSED_CALLS[kind]}. I will crop {scene}."
    return turns, fix


def video_o3_example(plan: VideoPlan, q: QuestionPlan, sample: Sample, cfg: SynthConfig) -> SFTExample:
    turns = [ChatTurn("user", None, VideoUse("global"))]
    seen = []
    if sample.task is Task.TEMPORAL_GROUNDING:
        start, end = sample.clues[0]
        answer = json.dumps({"temporal_segment": [float(seconds_text(start)), float(seconds_text(end))]})
        think = f"In the overview {_phrase(q.region)} turns {q.clues[0].colour} from about {seconds_text(start)} s to {seconds_text(end)} s."
        turns.append(ChatTurn("assistant", f"<think>{think}</think>\n<answer>{answer}</answer>\n"))
        return SFTExample(sample, turns, "video_o3")
    if q.data_type in TOOL_TYPES:
        for i, e in enumerate(q.clues):
            start, end = _span(plan, e.scene)
            where = _locate(plan, e.scene, cfg.question_style)
            lead = (
                f"{where}The overview shows nothing in {_phrase(q.region)} {_when(plan, e.scene, cfg.question_style)}; the evidence must be brief. I will look closer."
                if i == 0
                else f"{seen[-1]} {where}Now the next part."
            )
            kind = refused_call_kind(sample, cfg) if i == 0 else None
            if kind is not None:
                recovery, lead = _recovery_turns(kind, lead, (start, end), plan.duration_s, cfg.crop_strategy)
                turns.extend(recovery)
            turns.append(ChatTurn("assistant", f"<think>{lead}</think>\n{_grounding(start, end, cfg.crop_strategy)}"))
            turns.append(ChatTurn("user", None, VideoUse(cfg.crop_strategy, start, end)))
            seen.append(f"The close look shows {_phrase(q.region)} turning {e.colour} at about {seconds_text(key_time(plan, e))} s.")
        think = f"{seen[-1]} So the answer is option {sample.answer}." if len(seen) == 1 else f"{' '.join(seen)} That is option {sample.answer}."
    else:
        seen = [f"{_locate(plan, e.scene, cfg.question_style)}In the overview {_phrase(q.region)} is {e.colour} at about {seconds_text(key_time(plan, e))} s."
                for e in q.clues]
        think = f"{' '.join(seen)} So the answer is option {sample.answer}."
    turns.append(ChatTurn("assistant", f"<think>{think}</think>\n<answer>{sample.answer}</answer>\n"))
    return SFTExample(sample, turns, "video_o3")


def open_o3_frame_size(plan: VideoPlan, cfg: SynthConfig) -> tuple[int, int]:
    """(height, width) in pixels of the open_o3 view of this video: the sampler's own rule."""
    spec = preset("open_o3", num_frames=cfg.open_o3_frames, max_frames=cfg.open_o3_frames)
    n = min(cfg.open_o3_frames, plan.n_frames)
    return frame_size_for_budget(plan.height, plan.width, patch_budget(n, spec.max_tokens, spec.min_tokens, spec.max_tokens_per_patch))


def open_o3_example(plan: VideoPlan, q: QuestionPlan, sample: Sample, cfg: SynthConfig) -> SFTExample:
    h, w = open_o3_frame_size(plan, cfg)
    cites = []
    for e in q.clues:
        x1, y1, x2, y2 = e.box_px
        box = [round(x1 * w / plan.width), round(y1 * h / plan.height), round(x2 * w / plan.width), round(y2 * h / plan.height)]
        cites.append(
            f"<obj>{e.region}</obj><box>[{','.join(map(str, box))}]</box>at<t>{seconds_text(key_time(plan, e))}</t>s is {e.colour}."
        )
    if sample.task is Task.TEMPORAL_GROUNDING:
        start, end = sample.clues[0]
        answer = f"From <t>{seconds_text(start)}</t>s to <t>{seconds_text(end)}</t>s"
        cites.append(f"It starts at <t>{seconds_text(start)}</t>s and ends at <t>{seconds_text(end)}</t>s.")
    else:
        answer = sample.answer
    text = f"<think>The {' Then the '.join(cites)}</think><answer>{answer}</answer>"
    return SFTExample(sample, [ChatTurn("user", None, VideoUse("open_o3")), ChatTurn("assistant", text)], "open_o3")
