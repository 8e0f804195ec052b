"""verl-style RL rows (the layout verl's RLHF datasets use), read and written.

    {"data_source": str,
     "prompt": [{"role": "user", "content": "<video>\\n<question>\\n<options, one per line>"}],
     "videos": [{"video": path, "frame_fps": number|null}],
     "ability": <Task value>,
     "reward_model": {"style": "rule", "ground_truth": <answer>},
     "extra_info": {"index": int, "id": str, "data_type": <DataType value>, "sample": <JSON string>}}

The project writes the whole Sample as a JSON string in extra_info.sample (a string keeps parquet's
schema flat whatever the sample holds), so a round trip is lossless. Rows from elsewhere, without
it, are rebuilt from prompt / videos / reward_model: the question is the last user message minus
"<video>", options its lettered lines.
"""
from __future__ import annotations

import json
from typing import Any

from vo3rl.data.mcq import answer_letter, options_from_question
from vo3rl.data.paths import resolve_video_path
from vo3rl.data.rowfields import SEEKER_SOURCE_NAMES, data_type_from_source, optional_number, row_id
from vo3rl.data.sample_json import parse_enum, sample_from_dict, sample_to_dict
from vo3rl.data.schema import DataType, Sample, SampleError, Task
from vo3rl.video.types import VideoRef

VIDEO_PLACEHOLDER = "<video>"


def sample_to_verl_row(sample: Sample, index: int) -> dict[str, Any]:
    """Sample -> verl row; `index` is the row's position (verl's extra_info.index)."""
    content = "\n".join([VIDEO_PLACEHOLDER, sample.question, *sample.options])
    return {
        "data_source": sample.source or SEEKER_SOURCE_NAMES[sample.data_type],
        "prompt": [{"role": "user", "content": content}],
        "videos": [{"video": sample.video.path, "frame_fps": sample.video.frame_fps}],
        "ability": sample.task.value,
        "reward_model": {"style": "rule", "ground_truth": sample.answer},
        "extra_info": {
            "index": index,
            "id": sample.id,
            "data_type": sample.data_type.value,
            "sample": json.dumps(sample_to_dict(sample), ensure_ascii=False),
        },
    }


def _rebuild(row: dict, sample_id: str) -> Sample:
    prompt = row.get("prompt")
    users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"] if isinstance(prompt, list) else []
    if not users or not isinstance(users[-1], str):
        raise SampleError(sample_id, "bad_field: prompt needs a user message with string content")
    question = users[-1].replace(VIDEO_PLACEHOLDER, "").strip()
    videos = row.get("videos")
    first = videos[0] if isinstance(videos, list) and videos else None
    path, fps = first, None
    if isinstance(first, dict):
        path = first.get("video", first.get("path"))
        fps = optional_number(first.get("frame_fps"), "videos[0].frame_fps", sample_id)
    if not isinstance(path, str):
        raise SampleError(sample_id, "bad_field: videos[0] must be a path or {'video': path}")
    reward = row.get("reward_model") if isinstance(row.get("reward_model"), dict) else {}
    task = parse_enum(Task, row.get("ability", Task.MCQ.value), sample_id) if row.get("ability") in {t.value for t in Task} else Task.MCQ
    extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
    data_type = (
        parse_enum(DataType, extra["data_type"], sample_id)
        if "data_type" in extra
        else data_type_from_source(row.get("data_source"), sample_id)
    )
    options = options_from_question(question)
    answer = reward.get("ground_truth")
    if task is Task.MCQ:
        answer = answer_letter(answer, options, sample_id)
    elif not isinstance(answer, str):
        raise SampleError(sample_id, f"bad_answer: ground_truth must be a string, got {answer!r}")
    return Sample(id=sample_id, question=question, answer=answer, video=VideoRef(path, fps), task=task,
                  data_type=data_type, options=options, source=str(row.get("data_source", "")))


def verl_row_to_sample(row: Any, fallback_id: str, data_root: str | None = None) -> Sample:
    """One verl row -> Sample (lossless when extra_info.sample is present). Raises SampleError."""
    if not isinstance(row, dict):
        raise SampleError(fallback_id, f"bad_row: expected an object, got {type(row).__name__}")
    extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
    sample_id = row_id(extra, ("id",), fallback_id)
    if isinstance(extra.get("sample"), str):
        try:
            sample = sample_from_dict(json.loads(extra["sample"]))
        except json.JSONDecodeError as exc:
            raise SampleError(sample_id, f"bad_field: extra_info.sample is not JSON ({exc})") from None
    else:
        sample = _rebuild(row, sample_id)
    sample.video = VideoRef(resolve_video_path(sample.video.path, data_root, sample.id), sample.video.frame_fps)
    return sample
