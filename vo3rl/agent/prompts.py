"""The words the agent is shown, as recipe-overridable templates, and the functions that fill them.

Templates are plain str fields so a recipe (OmegaConf) can override any of them, e.g. to match the
wording a released checkpoint was trained with. Placeholders are `{name}`; only the names listed in
PLACEHOLDERS are substituted, so literal JSON braces in a template need no escaping.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

from vo3rl.data.schema import Sample, Task

PLACEHOLDERS = frozenset(
    {"question", "options", "duration_s", "fps", "n_frames", "start_s", "end_s", "error", "frame_times"}
)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

_TOOL_PROTOCOL = (
    "You answer questions about a long video. You first see the whole video at a low frame rate. "
    "When the evidence you need is too brief or too small to make out, you may re-watch a part of "
    "the video at a higher density with the video crop tool.\n"
    "Every reply has two parts. First reason inside <think></think>. Then either\n"
    "- call the tool: <grounding>{\"temporal_segment\": [start, end], \"sampling_strategy\": "
    "\"coarse\"}</grounding>, with start and end in seconds of the original video (at least 1 second "
    "apart) and a strategy of coarse, medium or fine (more detail costs more of your context), or\n"
    "- give the final answer: <answer>…</answer>.\n"
    "Each tool result shows the requested segment with a line stating how it was sampled."
)

_OPEN_O3_EVIDENCE = (
    "The frames were taken at {frame_times} seconds. Reason step by step inside <think></think> and "
    "cite what you see as <obj>name</obj><box>[x1,y1,x2,y2]</box>at<t>time</t>s, the box in pixels of "
    "the frame and the time in seconds. "
)


@dataclass
class PromptTemplates:
    """Every text the protocol renders. Placeholders per field:
    video_o3_mcq: question, options, duration_s · video_o3_open: question, duration_s ·
    observation: fps, n_frames, start_s, end_s · error_observation: error ·
    open_o3_*: question, options, duration_s, frame_times."""

    system: str = _TOOL_PROTOCOL
    video_o3_mcq: str = (
        "Question: {question}\nOptions:\n{options}\n"
        "Answer with the letter of the correct option inside <answer></answer>."
    )
    video_o3_open: str = "Question: {question}\nAnswer briefly inside <answer></answer>."
    observation: str = "Sampled at {fps} fps: {n_frames} frames from {start_s}s to {end_s}s."
    error_observation: str = (
        "The tool call failed: {error} No video was added. Continue: fix the call or give your answer."
    )
    force_answer: str = (
        "\nThis is your last turn. Do not call the tool again; give your final answer inside <answer></answer>."
    )
    open_o3_system: str = "You are a helpful assistant."
    open_o3_mcq: str = (
        "{question}\nOptions:\n{options}\n" + _OPEN_O3_EVIDENCE
        + "Then give the option letter inside <answer></answer>."
    )
    open_o3_free_form: str = "{question}\n" + _OPEN_O3_EVIDENCE + "Then give a short answer inside <answer></answer>."
    open_o3_temporal_grounding: str = (
        "{question}\n" + _OPEN_O3_EVIDENCE
        + "Then give the moment inside <answer></answer> as From <t>start</t>s to <t>end</t>s."
    )
    open_o3_tg_mcq: str = (
        "{question}\nOptions:\n{options}\n" + _OPEN_O3_EVIDENCE
        + "Then give the option letter and, on the next line, the moment as From <t>start</t>s to "
        "<t>end</t>s, both inside <answer></answer>."
    )
    open_o3_spatial_grounding: str = (
        "{question}\n" + _OPEN_O3_EVIDENCE
        + "Then give the object's box inside <answer></answer> as <obj>name</obj><box>[x1,y1,x2,y2]</box>at<t>time</t>s."
    )

    def validate(self) -> None:
        """Raise ValueError when a template names a placeholder that is never filled (a typo)."""
        for f in fields(self):
            unknown = set(_PLACEHOLDER.findall(getattr(self, f.name))) - PLACEHOLDERS
            if unknown:
                raise ValueError(f"prompt template {f.name!r} has unknown placeholders {sorted(unknown)}")


def fill(template: str, **values) -> str:
    """Substitute `{name}` for each given value; other braces are left as written."""
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


def seconds(value: float) -> str:
    """A time or rate for the model to read: at most two decimals, no trailing zeros ("12.5", "3")."""
    if value is None or not math.isfinite(value):
        return "?"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def format_options(options: list[str]) -> str:
    return "\n".join(str(option) for option in options)


def render_question(sample: Sample, templates: PromptTemplates, protocol: str = "video_o3",
                    frame_times_s: list[float] | None = None) -> str:
    """The text of the first user turn (the video's tokens go before it). `frame_times_s`, the
    seconds of the sampled frames, fills Open-o3's `{frame_times}`."""
    task = getattr(sample.task, "value", sample.task)
    values = dict(
        question=sample.question,
        options=format_options(sample.options),
        duration_s=seconds(sample.duration_s) if sample.duration_s is not None else "?",
        frame_times=", ".join(seconds(t) for t in frame_times_s or []),
    )
    if protocol == "open_o3":
        return fill(getattr(templates, f"open_o3_{Task(task).value}"), **values)
    if protocol != "video_o3":
        raise ValueError(f"unknown protocol {protocol!r}")
    template = templates.video_o3_mcq if task in (Task.MCQ.value, Task.TG_MCQ.value) else templates.video_o3_open
    return fill(template, **values)


def render_observation(n_frames: int, start_s: float, end_s: float, templates: PromptTemplates) -> str:
    """The line stating how a clip was sampled: its rate (frames per second of the window), frame
    count and window in seconds of the original timeline."""
    window = end_s - start_s
    fps = n_frames / window if window > 0 else float("nan")
    return fill(templates.observation, fps=seconds(fps), n_frames=n_frames, start_s=seconds(start_s),
                end_s=seconds(end_s))


def clip_window_s(clip) -> tuple[float, float]:
    """The window a Clip was sampled from, in seconds: its spec's bounds clipped to the video."""
    start = clip.spec.start_s if clip.spec.start_s is not None else 0.0
    end = clip.spec.end_s if clip.spec.end_s is not None else clip.duration_s
    return max(0.0, start), min(clip.duration_s, end)


def render_clip_observation(clip, templates: PromptTemplates) -> str:
    """`render_observation` for a sampled Clip."""
    start, end = clip_window_s(clip)
    return render_observation(len(clip.frames), start, end, templates)


def render_error(message: str, templates: PromptTemplates) -> str:
    return fill(templates.error_observation, error=message)


def system_prompt(templates: PromptTemplates, protocol: str = "video_o3") -> str:
    return templates.open_o3_system if protocol == "open_o3" else templates.system
