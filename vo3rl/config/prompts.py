"""The words the agent is shown, as recipe-overridable templates (`prompts:` in a recipe).

Templates are plain str fields so a recipe (OmegaConf) can override any of them, e.g. to match the
wording a released checkpoint was trained with. Placeholders are `{name}`; only the names listed in
PLACEHOLDERS are substituted (by `vo3rl.agent.prompts.fill`), so literal JSON braces in a template need
no escaping.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields

PLACEHOLDERS = frozenset(
    {"question", "options", "duration_s", "fps", "n_frames", "start_s", "end_s", "error", "frame_times"}
)
PLACEHOLDER_PATTERN = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

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
    open_o3_*: question, options, duration_s, frame_times · vstar_when, vstar_where: question ·
    tts_rating: question (with its options)."""

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
    # V-STAR's follow-up questions (one conversation: what, then when and where in the chain's order)
    vstar_when: str = "{question}\nGive the moment inside <answer></answer> as From <t>start</t>s to <t>end</t>s."
    vstar_where: str = (
        "{question}\nGive the object's box at each moment you see it inside <answer></answer>, as "
        "<obj>name</obj><box>[x1,y1,x2,y2]</box>at<t>time</t>s, the box in pixels of the frame."
    )

    # Confidence-aware test-time scaling (methods.md section 8): the model rates the evidence crops
    # of one of its sampled answers. `{question}` carries the options too.
    tts_rating: str = (
        "The images above are crops of the evidence an answer cited for this question:\n{question}\n"
        "Do the crops show evidence relevant to the question? Reply with one digit only: 0 (not relevant), "
        "1 (partly relevant) or 2 (clearly relevant)."
    )

    def validate(self) -> None:
        """Raise ValueError when a template names a placeholder that is never filled (a typo)."""
        for f in fields(self):
            unknown = set(PLACEHOLDER_PATTERN.findall(getattr(self, f.name))) - PLACEHOLDERS
            if unknown:
                raise ValueError(f"prompt template {f.name!r} has unknown placeholders {sorted(unknown)}")
