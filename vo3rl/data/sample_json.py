"""Sample <-> plain JSON dict: the project's own lossless row layout.

    {"id", "question", "answer", "video": {"path", "frame_fps"}, "task", "data_type", "options",
     "duration_s", "clues": [[s, e], ...], "key_frames": [{"time_s", "boxes": {name: [[x1,y1,x2,y2], ...]}}],
     "source", "extra"}

Times in seconds, boxes normalised to [0, 1]. Reading checks types and raises SampleError naming
the row, so one bad row never stops a reader.
"""
from __future__ import annotations

import math
from typing import Any

from vo3rl.data.schema import DataType, KeyFrame, Sample, SampleError, Task
from vo3rl.video.types import VideoRef


def sample_to_dict(sample: Sample) -> dict[str, Any]:
    """A JSON-ready dict (enums as their string values, tuples as lists)."""
    return {
        "id": sample.id,
        "question": sample.question,
        "answer": sample.answer,
        "video": {"path": sample.video.path, "frame_fps": sample.video.frame_fps},
        "task": sample.task.value,
        "data_type": sample.data_type.value,
        "options": list(sample.options),
        "duration_s": sample.duration_s,
        "clues": [[float(s), float(e)] for s, e in sample.clues],
        "key_frames": [
            {"time_s": kf.time_s, "boxes": {name: [list(map(float, b)) for b in boxes] for name, boxes in kf.boxes.items()}}
            for kf in sample.key_frames
        ],
        "source": sample.source,
        "extra": dict(sample.extra),
    }


def _number(value: Any, what: str, sample_id: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SampleError(sample_id, f"bad_field: {what} must be a finite number, got {value!r}")
    return float(value)


def parse_interval(value: Any, what: str, sample_id: str) -> tuple[float, float]:
    """[s, e] seconds with 0 <= s <= e, else SampleError."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SampleError(sample_id, f"bad_field: {what} must be [start, end], got {value!r}")
    start, end = (_number(v, what, sample_id) for v in value)
    if start < 0 or end < start:
        raise SampleError(sample_id, f"bad_field: {what} [{start}, {end}] is reversed or negative")
    return start, end


def parse_box(value: Any, what: str, sample_id: str) -> tuple[float, float, float, float]:
    """[x1, y1, x2, y2] with x1 <= x2 and y1 <= y2, else SampleError."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise SampleError(sample_id, f"bad_field: {what} must be [x1, y1, x2, y2], got {value!r}")
    x1, y1, x2, y2 = (_number(v, what, sample_id) for v in value)
    if x2 < x1 or y2 < y1:
        raise SampleError(sample_id, f"bad_field: {what} {value!r} has x2 < x1 or y2 < y1")
    return x1, y1, x2, y2


def require_str(row: dict, key: str, sample_id: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise SampleError(sample_id, f"bad_field: {key!r} must be a string, got {type(value).__name__}")
    return value


def parse_enum(enum_type, value: Any, sample_id: str):
    try:
        return enum_type(value)
    except ValueError:
        known = ", ".join(e.value for e in enum_type)
        raise SampleError(sample_id, f"bad_field: {value!r} is not a {enum_type.__name__} ({known})") from None


def sample_from_dict(row: Any) -> Sample:
    """Inverse of sample_to_dict. Raises SampleError on a malformed row."""
    if not isinstance(row, dict):
        raise SampleError("?", f"bad_row: expected an object, got {type(row).__name__}")
    sample_id = str(row.get("id", "?"))
    video = row.get("video")
    if not isinstance(video, dict) or not isinstance(video.get("path"), str):
        raise SampleError(sample_id, "bad_field: 'video' must be {'path': str, 'frame_fps': number|null}")
    fps = video.get("frame_fps")
    duration = row.get("duration_s")
    key_frames = []
    for i, kf in enumerate(row.get("key_frames") or []):
        if not isinstance(kf, dict) or not isinstance(kf.get("boxes", {}), dict):
            raise SampleError(sample_id, f"bad_field: key_frames[{i}] must be {{'time_s', 'boxes'}}")
        boxes = {
            str(name): [parse_box(b, f"key_frames[{i}].boxes[{name!r}]", sample_id) for b in bs]
            for name, bs in kf.get("boxes", {}).items()
        }
        key_frames.append(KeyFrame(time_s=_number(kf.get("time_s"), f"key_frames[{i}].time_s", sample_id), boxes=boxes))
    options = row.get("options") or []
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise SampleError(sample_id, "bad_field: 'options' must be a list of strings")
    return Sample(
        id=sample_id,
        question=require_str(row, "question", sample_id),
        answer=require_str(row, "answer", sample_id),
        video=VideoRef(video["path"], None if fps is None else _number(fps, "video.frame_fps", sample_id)),
        task=parse_enum(Task, row.get("task", Task.MCQ.value), sample_id),
        data_type=parse_enum(DataType, row.get("data_type", DataType.SINGLE_CLUE_TOOL.value), sample_id),
        options=list(options),
        duration_s=None if duration is None else _number(duration, "duration_s", sample_id),
        clues=[parse_interval(c, f"clues[{i}]", sample_id) for i, c in enumerate(row.get("clues") or [])],
        key_frames=key_frames,
        source=str(row.get("source", "")),
        extra=dict(row.get("extra") or {}),
    )
