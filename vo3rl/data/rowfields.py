"""Small field readers shared by the format modules: ids, numbers, intervals, data types."""
from __future__ import annotations

import math
import re
from typing import Any

from vo3rl.data.schema import DataType, SampleError

_INTERVAL_TEXT = re.compile(r"^\s*\[\s*(-?[\d.eE+-]+)\s*,\s*(-?[\d.eE+-]+)\s*\]\s*$")


def row_id(row: dict, keys: tuple[str, ...], fallback: str) -> str:
    """The first present id field as a string, else `fallback` (the file:line id)."""
    for key in keys:
        value = row.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value)
    return fallback


def optional_number(value: Any, what: str, sample_id: str) -> float | None:
    """None for absent/null, a finite float for a number or numeric string, else SampleError."""
    if value is None:
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise SampleError(sample_id, f"bad_field: {what} must be a finite number, got {value!r}")
    return number


def seconds_text(x: float) -> str:
    """12.5 -> "12.5", 20.0 -> "20" (millisecond resolution)."""
    text = f"{x:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def interval_text(start: float, end: float) -> str:
    """The answer string of a temporal-grounding sample: "[s, e]" in seconds."""
    return f"[{seconds_text(start)}, {seconds_text(end)}]"


def interval_from_text(text: str, sample_id: str) -> tuple[float, float]:
    """"[s, e]" -> (s, e) seconds, else SampleError."""
    match = _INTERVAL_TEXT.match(text) if isinstance(text, str) else None
    if not match:
        raise SampleError(sample_id, f"bad_answer: expected '[start, end]' seconds, got {text!r}")
    start, end = float(match.group(1)), float(match.group(2))
    if not (math.isfinite(start) and math.isfinite(end)) or end < start or start < 0:
        raise SampleError(sample_id, f"bad_answer: interval {text!r} is reversed or negative")
    return start, end


# Seeker-173K names its data types in `data_source`; these are the names the project writes.
SEEKER_SOURCE_NAMES: dict[DataType, str] = {
    DataType.SINGLE_CLUE_TOOL: "clue_single_w_tool",
    DataType.MULTI_CLUE_TOOL: "clue_multi_w_tool",
    DataType.SINGLE_CLUE_NO_TOOL: "clue_single_wo_tool",
    DataType.MULTI_CLUE_NO_TOOL: "clue_multi_wo_tool",
    DataType.TEMPORAL_GROUNDING: "temporal_grounding",
}


def data_type_from_source(name: Any, sample_id: str) -> DataType:
    """A Seeker-style `data_source` ("clue_single_w_tool", "clue_multi_wo_tool", "...grounding...")
    or a DataType value -> DataType. Unrecognised names are a SampleError: a wrong type would pay
    the wrong reward bonus."""
    if isinstance(name, str):
        text = name.strip().lower()
        try:
            return DataType(text)
        except ValueError:
            pass
        if "ground" in text or text.startswith("tg"):
            return DataType.TEMPORAL_GROUNDING
        multi, single = "multi" in text, "single" in text
        no_tool = any(tag in text for tag in ("wo_tool", "no_tool", "without_tool", "notool"))
        tool = not no_tool and any(tag in text for tag in ("w_tool", "with_tool", "tool"))
        if multi != single and (tool or no_tool):
            if multi:
                return DataType.MULTI_CLUE_TOOL if tool else DataType.MULTI_CLUE_NO_TOOL
            return DataType.SINGLE_CLUE_TOOL if tool else DataType.SINGLE_CLUE_NO_TOOL
    raise SampleError(sample_id, f"bad_field: data_source {name!r} names no data type (single/multi clue, w/wo tool, grounding)")
