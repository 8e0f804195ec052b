"""Parsers for everything the model writes. Model output is untrusted: every function here accepts any
str (or bytes, decoded with errors="replace") and returns a structured result; none raises.

Work is bounded on purpose: tags are found with linear `str.find` scans, the few regexes run only on
short, capped slices, and counts of claims/timestamps are capped, so 100 kB of garbage parses in
about a millisecond.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from enum import Enum

STRATEGIES = ("coarse", "medium", "fine")
MIN_SEGMENT_S = 1.0
# Seconds a segment may fall short of `min_segment_s` and still count: 1.4 - 0.4 is 0.9999999999999999 in
# binary floating point, and the model meant one second. Far below any frame interval, so it admits
# nothing a person would call shorter.
SEGMENT_LENGTH_TOLERANCE_S = 1e-6
# Beyond these sizes a payload cannot be a real call / number / box; refuse instead of working on it.
MAX_JSON_CHARS = 4096
MAX_NUMBER_CHARS = 64
MAX_BOX_CHARS = 256
MAX_ITEMS = 256  # claims, timestamps or boxes read from one output

# The tool-call errors that count as JSON problems in Video-o3's format reward.
JSON_ERROR_KINDS = frozenset(
    {"parse_error", "missing_temporal_segment", "missing_sampling_strategy", "invalid_strategy", "segment_not_pair"}
)


def as_text(output: str | bytes | None) -> str:
    """Model output as str; bytes are decoded as UTF-8 with replacement characters, None is ""."""
    if output is None:
        return ""
    if isinstance(output, (bytes, bytearray)):
        return bytes(output).decode("utf-8", errors="replace")
    return output if isinstance(output, str) else str(output)


@dataclass(frozen=True)
class TagSpan:
    """Character offsets of one `<tag>…</tag>`: [open_start, close_end) covers the markers,
    [content_start, content_end) the text between them."""

    open_start: int
    content_start: int
    content_end: int
    close_end: int


def find_tags(text: str, tag: str, limit: int = 1 << 30) -> list[TagSpan]:
    """Every `<tag>…</tag>` pair, each opening paired with the first closing after it. An opening
    nested inside a pair is skipped; an unclosed opening ends the scan."""
    opening, closing = f"<{tag}>", f"</{tag}>"
    spans: list[TagSpan] = []
    pos = 0
    while len(spans) < limit:
        start = text.find(opening, pos)
        if start < 0:
            break
        content_start = start + len(opening)
        end = text.find(closing, content_start)
        if end < 0:
            break
        spans.append(TagSpan(start, content_start, end, end + len(closing)))
        pos = end + len(closing)
    return spans


def tags_balanced(text: str, tag: str) -> bool:
    """True when openings and closings of `tag` alternate open, close, open, close … and end closed."""
    opening, closing = f"<{tag}>", f"</{tag}>"
    if text.count(opening) != text.count(closing):
        return False
    pos = 0
    while True:
        start = text.find(opening, pos)
        if start < 0:
            return text.find(closing, pos) < 0
        stray_close = text.find(closing, pos)
        if stray_close < start:
            return False
        end = text.find(closing, start + len(opening))
        if end < 0 or 0 <= text.find(opening, start + len(opening)) < end:
            return False
        pos = end + len(closing)


def last_tag_content(text: str, tag: str) -> str | None:
    """Content of the last complete `<tag>…</tag>`, or None."""
    closing = f"</{tag}>"
    end = text.rfind(closing)
    if end < 0:
        return None
    start = text.rfind(f"<{tag}>", 0, end)
    if start < 0:
        return None
    return text[start + len(tag) + 2 : end]


def finite_number(value: object) -> float | None:
    """A JSON value as a finite float; bools, strings, NaN, inf and overflowing ints give None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None


def number_from_text(text: str) -> float | None:
    """A finite float written as text ("12.5", " 3 "), else None."""
    text = text.strip()
    if not text or len(text) > MAX_NUMBER_CHARS:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# ---------------------------------------------------------------------------------------------
# Video-o3: tool calls, answers, turn kinds


@dataclass(frozen=True)
class ParseError:
    """A named failure: `kind` is a stable machine tag, `message` is what the model is told."""

    kind: str
    message: str


@dataclass(frozen=True)
class ToolCall:
    """A validated video-crop call: [start_s, end_s] clipped to the video, seconds of the original
    timeline; `requested` is the segment as written."""

    start_s: float
    end_s: float
    strategy: str
    requested: tuple[float, float]
    name: str = "video_crop"


@dataclass(frozen=True)
class ToolCallParse:
    call: ToolCall | None = None
    error: ParseError | None = None

    @property
    def ok(self) -> bool:
        return self.call is not None

    @property
    def json_error(self) -> bool:
        return self.error is not None and self.error.kind in JSON_ERROR_KINDS


def _fail(kind: str, message: str) -> ToolCallParse:
    return ToolCallParse(error=ParseError(kind, message))


def _load_json_object(payload: str) -> dict | None:
    for candidate in (payload, payload.replace("'", '"')):
        try:
            value = json.loads(candidate)
        except Exception:  # ValueError, RecursionError, int-digit limits: all mean "not a call"
            continue
        if isinstance(value, dict):
            return value
    return None


def parse_tool_call(
    output: str | bytes | None,
    duration_s: float | None,
    strategies: tuple[str, ...] = STRATEGIES,
    min_segment_s: float = MIN_SEGMENT_S,
) -> ToolCallParse:
    """Validate the last `<grounding>` of an assistant turn as a video-crop call.

    The JSON object is read between the first `{` and the last `}` of the grounding (a second try
    turns single quotes into double). The segment is clipped to [0, duration_s] (seconds; only the
    lower bound when the duration is unknown) and must then span at least `min_segment_s` (less
    `SEGMENT_LENGTH_TOLERANCE_S`, for float rounding).
    """
    text = as_text(output)
    start = text.rfind("<grounding>")
    if start < 0:
        return _fail("no_grounding", "No <grounding> tool call was found in your reply.")
    body_start = start + len("<grounding>")
    body_end = text.find("</grounding>", body_start)
    body = text[body_start : body_end if body_end >= 0 else len(text)]
    first, last = body.find("{"), body.rfind("}")
    if first < 0 or last <= first or last - first > MAX_JSON_CHARS:
        return _fail("parse_error", "The tool call is not a JSON object such as "
                     '{"temporal_segment": [10, 25], "sampling_strategy": "medium"}.')
    call = _load_json_object(body[first : last + 1])
    if call is None:
        return _fail("parse_error", "The tool call could not be parsed as JSON; write one JSON object with "
                     '"temporal_segment" and "sampling_strategy".')
    if "temporal_segment" not in call:
        return _fail("missing_temporal_segment", 'The tool call has no "temporal_segment" [start, end] in seconds.')
    if "sampling_strategy" not in call:
        return _fail("missing_sampling_strategy",
                     f'The tool call has no "sampling_strategy"; choose one of {", ".join(strategies)}.')
    strategy = call["sampling_strategy"]
    strategy = strategy.strip().lower() if isinstance(strategy, str) else None
    if strategy not in strategies:
        return _fail("invalid_strategy", f'"sampling_strategy" must be one of {", ".join(strategies)}.')
    segment = call["temporal_segment"]
    pair = [finite_number(v) for v in segment] if isinstance(segment, (list, tuple)) and len(segment) == 2 else []
    if len(pair) != 2 or None in pair:
        return _fail("segment_not_pair", '"temporal_segment" must be two finite numbers [start, end] in seconds.')
    t0, t1 = pair
    if t1 < t0:
        return _fail("segment_reversed", f"The segment [{t0:g}, {t1:g}] ends before it starts; write [start, end].")
    lo, hi = max(t0, 0.0), t1
    limit = finite_number(duration_s)
    if limit is not None:
        lo, hi = min(lo, limit), min(max(hi, 0.0), limit)
    if hi - lo < min_segment_s - SEGMENT_LENGTH_TOLERANCE_S:
        inside = f" inside the video (0 to {limit:g}s)" if limit is not None else ""
        return _fail("segment_too_short", f"The segment [{t0:g}, {t1:g}] spans {max(hi - lo, 0.0):g}s{inside}; "
                     f"it must span at least {min_segment_s:g}s.")
    return ToolCallParse(call=ToolCall(lo, hi, strategy, (t0, t1)))


def final_answer(output: str | bytes | None) -> str | None:
    """Content of the last complete `<answer>…</answer>`, stripped; None when there is none."""
    content = last_tag_content(as_text(output), "answer")
    return content.strip() if content is not None else None


class TurnKind(str, Enum):
    TOOL_CALL = "tool_call"
    ANSWER = "answer"
    NEITHER = "neither"


def classify_turn(output: str | bytes | None) -> TurnKind:
    """What an assistant turn does: an `<answer>` (wins when both appear), a `<grounding>` call, or neither."""
    text = as_text(output)
    if "<answer>" in text:
        return TurnKind.ANSWER
    if "<grounding>" in text:
        return TurnKind.TOOL_CALL
    return TurnKind.NEITHER


NO_ACTION = ParseError("no_action", "Your reply has neither a <grounding> tool call nor an <answer>. "
                       "Call the tool to look closer, or give your final answer.")

_CHOICE = re.compile(r"\(([A-Z])\)|\[([A-Z])\]|([A-Z])(?:\.|$)")


def parse_choice(text: str | bytes | None) -> str | None:
    """An option letter written as `X`, `X.…`, `(X)…` or `[X]…` on the first non-blank line, else None."""
    text = as_text(text)[:MAX_JSON_CHARS].strip().split("\n", 1)[0].strip()
    match = _CHOICE.match(text)
    if match is None:
        return None
    return next(group for group in match.groups() if group)


# ---------------------------------------------------------------------------------------------
# Open-o3 Video: grounded claims and temporal answers


@dataclass(frozen=True)
class Claim:
    """One cited piece of evidence: an object, its boxes (x1, y1, x2, y2 as written: pixels of the
    model's resized frame) and the time in seconds (None when the `at<t>…</t>s` part is missing)."""

    name: str
    boxes: tuple[tuple[float, float, float, float], ...]
    time_s: float | None


@dataclass(frozen=True)
class ClaimsParse:
    claims: tuple[Claim, ...] = ()
    errors: tuple[ParseError, ...] = ()


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """`[x1, y1, x2, y2]` as four finite numbers with x1 <= x2 and y1 <= y2, else None."""
    text = text.strip()
    if len(text) > MAX_BOX_CHARS or not (text.startswith("[") and text.endswith("]")):
        return None
    parts = text[1:-1].split(",")
    if len(parts) != 4:
        return None
    values = [number_from_text(p) for p in parts]
    if None in values:
        return None
    x1, y1, x2, y2 = values
    if x2 < x1 or y2 < y1:
        return None
    return (x1, y1, x2, y2)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n,":
        pos += 1
    return pos


def parse_claims(output: str | bytes | None) -> ClaimsParse:
    """Every `<obj>name</obj><box>[…]</box>…at<t>sec</t>s` in the text, in order; several boxes may
    follow one object. Malformed boxes are dropped and reported; a claim keeps its valid boxes."""
    text = as_text(output)
    claims: list[Claim] = []
    errors: list[ParseError] = []
    pos = 0
    while len(claims) < MAX_ITEMS:
        first_open = text.find("<obj>", pos)
        end_name = text.find("</obj>", first_open + len("<obj>")) if first_open >= 0 else -1
        if end_name < 0:
            break
        start = text.rfind("<obj>", first_open, end_name)  # the innermost opening before the closing
        name = text[start + len("<obj>") : end_name].strip()[:200]

        def report(kind: str, what: str) -> None:
            if len(errors) < MAX_ITEMS:
                errors.append(ParseError(kind, f"claim {name[:40]!r}: {what}"))

        cursor = _skip_space(text, end_name + len("</obj>"))
        boxes = []
        while text.startswith("<box>", cursor) and len(boxes) < MAX_ITEMS:
            box_end = text.find("</box>", cursor)
            if box_end < 0:
                report("unclosed_box", "<box> is not closed")
                break
            box = parse_box(text[cursor + len("<box>") : box_end])
            if box is None:
                report("invalid_box", "box is not [x1, y1, x2, y2] of finite numbers with x1 <= x2, y1 <= y2")
            else:
                boxes.append(box)
            cursor = _skip_space(text, box_end + len("</box>"))
        time_s = None
        t_start = _skip_space(text, cursor + 2) if text.startswith("at", cursor) else -1
        t_end = text.find("</t>", t_start) if t_start >= 0 and text.startswith("<t>", t_start) else -1
        if t_end < 0:
            report("missing_time", "no at<t>…</t>s after its boxes")
        else:
            time_s = number_from_text(text[t_start + len("<t>") : t_end])
            if time_s is None:
                report("invalid_time", "time is not a finite number")
            cursor = t_end + len("</t>")
        claims.append(Claim(name, tuple(boxes), time_s))
        pos = max(cursor, end_name + len("</obj>"))
    return ClaimsParse(tuple(claims), tuple(errors))


def think_text(output: str | bytes | None) -> str:
    """The contents of every complete `<think>…</think>`, joined by newlines."""
    text = as_text(output)
    return "\n".join(text[s.content_start : s.content_end] for s in find_tags(text, "think"))


def parse_timestamps(output: str | bytes | None) -> list[float]:
    """Every `<t>sec</t>` value that is a finite number, in order (at most MAX_ITEMS)."""
    text = as_text(output)
    values = (number_from_text(text[s.content_start : s.content_end]) for s in find_tags(text, "t", MAX_ITEMS))
    return [v for v in values if v is not None]


@dataclass(frozen=True)
class IntervalParse:
    """A [start_s, end_s] interval in seconds, or the reason there is none."""

    interval: tuple[float, float] | None = None
    error: ParseError | None = None


_NUM = r"\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*"
_FROM_TO = re.compile(r"from\s*<t>" + _NUM + r"</t>\s*s?\s*to\s*<t>" + _NUM + r"</t>", re.IGNORECASE)
_BRACKETS = re.compile(r"\[" + _NUM + "," + _NUM + r"\]")


def parse_interval(output: str | bytes | None) -> IntervalParse:
    """A temporal answer: `From <t>s</t>s to <t>e</t>s`, `{"temporal_segment": [s, e]}` or `[s, e]`.

    Reversed (end < start) and non-finite values are errors; start == end is a valid empty interval.
    """
    text = as_text(output)[:MAX_JSON_CHARS]
    pair: tuple[float | None, float | None] | None = None
    match = _FROM_TO.search(text)
    if match is not None:
        pair = (number_from_text(match.group(1)), number_from_text(match.group(2)))
    elif "temporal_segment" in text and (first := text.find("{")) >= 0 and (last := text.rfind("}")) > first:
        obj = _load_json_object(text[first : last + 1])
        segment = obj.get("temporal_segment") if obj is not None else None
        if isinstance(segment, (list, tuple)) and len(segment) == 2:
            pair = (finite_number(segment[0]), finite_number(segment[1]))
    if pair is None and (match := _BRACKETS.search(text)) is not None:
        pair = (number_from_text(match.group(1)), number_from_text(match.group(2)))
    if pair is None:
        return IntervalParse(error=ParseError("no_interval", "no `From <t>s</t>s to <t>e</t>s` or [s, e] found"))
    if None in pair:
        return IntervalParse(error=ParseError("not_finite", "interval bounds must be finite numbers"))
    start, end = pair
    if end < start:
        return IntervalParse(error=ParseError("segment_reversed", f"interval [{start:g}, {end:g}] is reversed"))
    return IntervalParse(interval=(start, end))
