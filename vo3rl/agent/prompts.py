"""The words the agent is shown, as recipe-overridable templates, and the functions that fill them.

Templates are plain str fields so a recipe (OmegaConf) can override any of them, e.g. to match the
wording a released checkpoint was trained with. Placeholders are `{name}`; only the names listed in
PLACEHOLDERS are substituted, so literal JSON braces in a template need no escaping.
"""
from __future__ import annotations

import math

from vo3rl.config.prompts import PLACEHOLDER_PATTERN, PromptTemplates
from vo3rl.data.schema import Sample, Task
from vo3rl.video.timing import clip_window_s


def fill(template: str, **values) -> str:
    """Substitute `{name}` for each given value; other braces are left as written."""
    return PLACEHOLDER_PATTERN.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


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


def render_clip_observation(clip, templates: PromptTemplates) -> str:
    """`render_observation` for a sampled Clip."""
    start, end = clip_window_s(clip)
    return render_observation(len(clip.frames), start, end, templates)


def render_error(message: str, templates: PromptTemplates) -> str:
    return fill(templates.error_observation, error=message)


def system_prompt(templates: PromptTemplates, protocol: str = "video_o3") -> str:
    return templates.open_o3_system if protocol == "open_o3" else templates.system
