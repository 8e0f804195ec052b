"""Charades-STA, the temporal-grounding benchmark, in its published layout: one moment per line of
`charades_sta_test.txt`,

    <video id> <start s> <end s>##<sentence>

(e.g. "3MSZA 24.3 30.4##person turn a light on."); the video is "<video id>.mp4" under `data_root`.
Each line becomes a temporal-grounding Sample whose answer is "[start, end]" and whose question asks
for the sentence's interval. A line that does not parse is skipped, named and counted.
"""
from __future__ import annotations

import math
import os
from typing import Iterator

from vo3rl.data.paths import resolve_video_path
from vo3rl.data.rowfields import interval_text
from vo3rl.data.schema import Sample, SampleError, Task
from vo3rl.data.skips import SkipLog
from vo3rl.video.types import VideoRef

QUESTION = ("Find the moment in the video described by the sentence: \"{sentence}\" "
            "Give its start and end time in seconds.")
MAX_LINE_CHARS = 4096


def charades_line_to_sample(line: str, line_id: str, data_root: str | None = None, video_ext: str = ".mp4",
                            question: str = QUESTION) -> Sample:
    """One annotation line -> Sample (task temporal_grounding). Raises SampleError naming the line."""
    if len(line) > MAX_LINE_CHARS or "##" not in line:
        raise SampleError(line_id, "bad_row: expected '<video> <start> <end>##<sentence>'")
    head, sentence = line.split("##", 1)
    parts, sentence = head.split(), sentence.strip()
    if len(parts) != 3 or not sentence:
        raise SampleError(line_id, "bad_row: expected '<video> <start> <end>##<sentence>'")
    video, start_text, end_text = parts
    try:
        start, end = float(start_text), float(end_text)
    except ValueError:
        raise SampleError(line_id, f"bad_field: start/end {start_text!r} {end_text!r} are not numbers") from None
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
        raise SampleError(line_id, f"bad_field: interval [{start_text}, {end_text}] must have 0 <= start < end")
    path = resolve_video_path(video + video_ext, data_root, line_id)
    return Sample(id=line_id, question=question.replace("{sentence}", sentence), answer=interval_text(start, end),
                  video=VideoRef(path), task=Task.TEMPORAL_GROUNDING, clues=[(start, end)], source="charades_sta",
                  extra={"video_id": video, "sentence": sentence})


def read_charades(path: str, skips: SkipLog, data_root: str | None = None, **options) -> Iterator[Sample]:
    """Samples of a Charades-STA annotation file; ids are "<file>:<line>" (a video has many moments)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"row file not found: {path}")
    name = os.path.basename(path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            line_id = f"{name}:{number}"
            try:
                yield charades_line_to_sample(line.rstrip("\n"), line_id, data_root, **options)
            except SampleError as err:
                skips.add_error(err, fallback_id=line_id)
