"""Format rewards: Video-o3's strict multi-turn form with the JSON-error deduction, Open-o3's 0/0.5/1."""
from __future__ import annotations

from dataclasses import dataclass

from vo3rl.agent.parse import as_text, find_tags, parse_tool_call, tags_balanced

_PROTOCOL_TAGS = ("<think>", "</think>", "<grounding>", "</grounding>", "<answer>", "</answer>")


def _free_of_tags(text: str) -> bool:
    return not any(tag in text for tag in _PROTOCOL_TAGS)


def strict_turn(output: str | bytes | None, action: str) -> bool:
    """True when a turn is exactly `<think>…</think>` then `<action>…</action>`, with nothing or one
    newline between them, no protocol tag inside either, and only whitespace around the whole."""
    text = as_text(output).strip()
    if not text.startswith("<think>"):
        return False
    think_end = text.find("</think>")
    if think_end < 0 or not _free_of_tags(text[len("<think>") : think_end]):
        return False
    rest = text[think_end + len("</think>") :]
    rest = rest[1:] if rest.startswith("\n") else rest
    opening, closing = f"<{action}>", f"</{action}>"
    return (
        rest.startswith(opening)
        and rest.endswith(closing)
        and len(rest) >= len(opening) + len(closing)
        and _free_of_tags(rest[len(opening) : len(rest) - len(closing)])
    )


@dataclass(frozen=True)
class VideoO3Format:
    """r_fmt = max(0, 1 − E/T) when every turn is well formed, else 0. `json_errors` = E, the
    tool calls whose JSON failed (parse error, missing key, invalid strategy, segment not a pair)."""

    score: float
    well_formed: bool
    json_errors: int
    turns: int


def video_o3_format(turns: list[str], duration_s: float | None = None, calls: list | None = None) -> VideoO3Format:
    """Every turn but the last must be think+grounding, the last think+answer. `calls`, if given, are
    the ToolCallParse results of turns[:-1] (so the caller's validation settings count)."""
    texts = [as_text(t) for t in turns]
    if not texts:
        return VideoO3Format(0.0, False, 0, 0)
    well_formed = all(strict_turn(t, "grounding") for t in texts[:-1]) and strict_turn(texts[-1], "answer")
    if not well_formed:
        return VideoO3Format(0.0, False, 0, len(texts))
    if calls is None or len(calls) != len(texts) - 1:
        calls = [parse_tool_call(t, duration_s) for t in texts[:-1]]
    json_errors = sum(c.json_error for c in calls)
    return VideoO3Format(max(0.0, 1.0 - json_errors / len(texts)), True, json_errors, len(texts))


def open_o3_format(output: str | bytes | None, temporal_task: bool = False) -> float:
    """0 without a complete think and answer or with any of think/answer/obj/box/t unpaired; 1.0 when
    the output cites spatio-temporal evidence (at least one obj, box and t; two t for temporal tasks);
    0.5 otherwise."""
    text = as_text(output)
    if not find_tags(text, "think", 1) or not find_tags(text, "answer", 1):
        return 0.0
    if not all(tags_balanced(text, tag) for tag in ("think", "answer", "obj", "box", "t")):
        return 0.0
    needed_t = 2 if temporal_task else 1
    if text.count("<obj>") >= 1 and text.count("<box>") >= 1 and text.count("<t>") >= needed_t:
        return 1.0
    return 0.5
