"""Evaluation sets: multiple-choice benchmark files and V-STAR.

MCQ rows (MLVU, VideoMME, Video-Holmes, LongVideoBench, VideoMMMU, MMVU, LVBench's questions): one
reader that accepts the usual spellings.
    id:       "question_id" | "id" | "Question ID" | "uid"   (else file:line)
    video:    "video_path" | "video" | "videoID" | "video_id" | "video ID" | "video_name"; a name
              without a suffix gets `video_ext` (".mp4"), a URL (MMVU) its last path part; a row
              without any names its video by its "id" (VideoMMMU's files are "<id>.mp4")
    question: "question" | "Question"
    options:  "options" | "candidates" | "Options" | "choices": lettered strings, plain texts, or {"A": text};
              without them, lettered lines of the question ("(A) …", LVBench), taken out of its text
    answer:   "answer" | "Answer" | "gt": a letter, "A. text", or the option's text; or
              "correct_choice": the option's 0-based index (LongVideoBench)
    duration: "duration" | "video_duration" in seconds, when numeric; VideoMME's category "short" |
              "medium" | "long" is kept as extra["duration"] (its accuracy is reported per category)
    kept in extra: "task_type" | "question_type" | "Question Type" | "question_category" | "domain" |
              "sub_category" | "duration_group"
LVBench's file (`lvbench` format) holds a video per line, {"key", "qa": [{"uid", "question", "answer",
"question_type": [...]}]}: each question becomes one MCQ row of video "<key>.mp4", grouped by its
first question type.
V-STAR rows: {"vid", "domain", "fps", "width", "height", "frame_count", "question", "chain", "object",
"answer", "temporal_question", "timestamps": [s, e], "spatial_question", "spatial_question_2",
"bboxes": [{"<t>_<frame index>": {"xmin", "ymin", "xmax", "ymax"}}]} with pixel boxes; the video is
"<vid>.mp4" (or "video_path"). The sample is free-form (answer judged), its clue the timestamps,
its key frames the boxes normalised by width/height, the chain's questions kept in extra.
"""
from __future__ import annotations

import os
from typing import Any

from vo3rl.data.jsonl import iter_rows
from vo3rl.data.mcq import LETTERS, answer_letter, normalise_options, options_from_question, question_without_options
from vo3rl.data.paths import resolve_video_path
from vo3rl.data.rowfields import optional_number, row_id
from vo3rl.data.sample_json import parse_interval
from vo3rl.data.schema import KeyFrame, Sample, SampleError, Task
from vo3rl.video.types import VideoRef

_ID_KEYS = ("question_id", "id", "Question ID", "uid")
_VIDEO_KEYS = ("video_path", "video", "videoID", "video_id", "video ID", "video_name")
_EXTRA_KEYS = ("task_type", "question_type", "Question Type", "question_category", "domain", "sub_category",
               "duration_group")


def _first(row: dict, keys: tuple[str, ...]) -> Any:
    return next((row[k] for k in keys if row.get(k) not in (None, "")), None)


def _video_name(value: Any, video_ext: str, sample_id: str) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise SampleError(sample_id, f"bad_field: no video reference (one of {_VIDEO_KEYS})")
    name = str(value)
    if "://" in name:  # a download URL: the file is under its own name
        name = name.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return name if os.path.splitext(name)[1] else name + video_ext


def mcq_row_to_sample(
    row: Any, fallback_id: str, data_root: str | None = None, source: str = "mcq", video_ext: str = ".mp4"
) -> Sample:
    """One benchmark MCQ row -> Sample (task mcq). Raises SampleError naming the row."""
    if not isinstance(row, dict):
        raise SampleError(fallback_id, f"bad_row: expected an object, got {type(row).__name__}")
    sample_id = row_id(row, _ID_KEYS, fallback_id)
    question = _first(row, ("question", "Question"))
    if not isinstance(question, str):
        raise SampleError(sample_id, "bad_field: question must be a string")
    raw_options = _first(row, ("options", "candidates", "Options", "choices"))
    if not raw_options and options_from_question(question):
        raw_options, question = options_from_question(question), question_without_options(question)
    if not raw_options:
        raise SampleError(sample_id, "bad_field: no options")
    options = normalise_options(raw_options, sample_id)
    answer = _first(row, ("answer", "Answer", "gt"))
    index = row.get("correct_choice")
    if answer is None and isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(options):
        answer = LETTERS[index]
    answer = answer_letter(answer, options, sample_id)
    duration = _first(row, ("duration", "video_duration"))
    duration = optional_number(duration, "duration", sample_id) if isinstance(duration, (int, float)) else None
    video = _first(row, _VIDEO_KEYS)
    video = row.get("id") if video is None else video
    path = resolve_video_path(_video_name(video, video_ext, sample_id), data_root, sample_id)
    return Sample(
        id=sample_id,
        question=question,
        answer=answer,
        video=VideoRef(path),
        task=Task.MCQ,
        options=options,
        duration_s=duration,
        source=source,
        extra={k: row[k] for k in _EXTRA_KEYS if k in row} | _duration_category(row),
    )


def read_lvbench(path: str, skips, data_root: str | None = None, video_ext: str = ".mp4"):
    """LVBench's `video_info.meta.jsonl`: one MCQ sample per question of every video line; a bad
    question is skipped and counted (id "<line>:qa<i>" when it has no uid), its neighbours read."""
    for rid, row in iter_rows(path, skips):
        questions = row.get("qa") if isinstance(row, dict) else None
        if not isinstance(questions, list):
            skips.add(rid, "bad_row", "an LVBench line needs a 'qa' list")
            continue
        for index, qa in enumerate(questions):
            qid = f"{rid}:qa{index}"
            try:
                if not isinstance(qa, dict):
                    raise SampleError(qid, f"bad_row: a question must be an object, got {type(qa).__name__}")
                types = qa.get("question_type")
                first_type = types[0] if isinstance(types, list) and types else types
                yield mcq_row_to_sample({**qa, "video": row.get("key"), "question_type": first_type}, qid,
                                        data_root, source="lvbench", video_ext=video_ext)
            except SampleError as err:
                skips.add_error(err, fallback_id=qid)


def _duration_category(row: dict) -> dict:
    value = row.get("duration")
    return {"duration": value} if value in ("short", "medium", "long") else {}


def _vstar_key_frames(row: dict, sample_id: str) -> list[KeyFrame]:
    width, height = optional_number(row.get("width"), "width", sample_id), optional_number(row.get("height"), "height", sample_id)
    fps = optional_number(row.get("fps"), "fps", sample_id)
    if not width or not height or width <= 0 or height <= 0:
        raise SampleError(sample_id, "bad_field: V-STAR boxes need positive width and height")
    name = str(row.get("object") or "object")
    frames = []
    for entry in row.get("bboxes") or []:
        if not isinstance(entry, dict):
            raise SampleError(sample_id, "bad_field: bboxes entries must be {'<t>_<frame>': box}")
        for key, box in entry.items():
            time_text, _, frame_text = str(key).partition("_")
            try:
                time_s = float(time_text)
            except ValueError:
                if not fps or not frame_text.isdigit():
                    raise SampleError(sample_id, f"bad_field: bbox key {key!r} gives no time") from None
                time_s = int(frame_text) / fps
            if not isinstance(box, dict) or not all(isinstance(box.get(k), (int, float)) for k in ("xmin", "ymin", "xmax", "ymax")):
                raise SampleError(sample_id, f"bad_field: bbox {key!r} needs numeric xmin, ymin, xmax, ymax")
            norm = (box["xmin"] / width, box["ymin"] / height, box["xmax"] / width, box["ymax"] / height)
            if norm[2] < norm[0] or norm[3] < norm[1]:
                raise SampleError(sample_id, f"bad_field: bbox {key!r} is reversed")
            frames.append(KeyFrame(time_s=time_s, boxes={name: [norm]}))
    return sorted(frames, key=lambda kf: kf.time_s)


def vstar_row_to_sample(row: Any, fallback_id: str, data_root: str | None = None, video_ext: str = ".mp4") -> Sample:
    """One V-STAR row -> Sample (task free_form; clue = timestamps; key frames = boxes)."""
    if not isinstance(row, dict):
        raise SampleError(fallback_id, f"bad_row: expected an object, got {type(row).__name__}")
    sample_id = row_id(row, ("id", "qid"), fallback_id)  # one video carries several questions: not "vid"
    question, answer = row.get("question"), row.get("answer")
    if not isinstance(question, str) or not isinstance(answer, str):
        raise SampleError(sample_id, "bad_field: question and answer must be strings")
    video = row.get("video_path") or _video_name(row.get("vid"), video_ext, sample_id)
    fps, frames = optional_number(row.get("fps"), "fps", sample_id), optional_number(row.get("frame_count"), "frame_count", sample_id)
    clue = parse_interval(row.get("timestamps"), "timestamps", sample_id) if row.get("timestamps") is not None else None
    return Sample(
        id=sample_id,
        question=question,
        answer=answer,
        video=VideoRef(resolve_video_path(video, data_root, sample_id)),
        task=Task.FREE_FORM,
        duration_s=frames / fps if fps and frames else None,
        clues=[clue] if clue else [],
        key_frames=_vstar_key_frames(row, sample_id),
        source="vstar",
        extra={k: row[k] for k in ("vid", "domain", "chain", "object", "temporal_question", "spatial_question", "spatial_question_2") if k in row},
    )
