"""Seeker-173K (Video-o3's data): RL rows and SFT chats, read and written.

RL row (methods.md section 7):
    {"doc_id", "data_source": "clue_single_w_tool" | "clue_multi_w_tool" | "clue_single_wo_tool" |
     "clue_multi_wo_tool" | "...grounding...", "video": path or frame folder, "frame_fps": number|null,
     "question", "options": ["A. ...", ...],
     "solution": {"answer": "A" (or "[s, e]" / [s, e] for grounding), "clue": [{"timestamp": [s, e], "text"}]}}
Optional keys the project also reads and writes (absent in the released data): "duration" (s),
"task" (a Task value), "key_frames": [{"time": s, "boxes": {name: [[x1, y1, x2, y2] normalised]}}].

SFT chat (the spec gives only the `videos` entries; the rest is this reader's choice):
    {"doc_id", "data_source"?, "messages": [{"role": "system"|"user"|"assistant", "content": str}]
     (or ShareGPT "conversations": [{"from": "human"|"gpt", "value"}]),
     "videos": [{"url": path, "crop": [s, e] or [-1, -1], "sample": "coarse"|"medium"|"fine"}],
     "question"?, "options"?, "solution"?}
Each "<video>" in a user message takes the next `videos` entry (crop [-1, -1] is the global view);
with no placeholders at all, the i-th user message takes the i-th video. Texts are kept literally,
placeholder included; a system message goes to sample.extra["system_prompt"]. The answer comes from
`solution.answer`, else the last `<answer>...</answer>` of the chat.
"""
from __future__ import annotations

import re
from typing import Any

from vo3rl.data.chat import ChatTurn, SFTExample, VideoUse
from vo3rl.data.mcq import answer_letter, normalise_options, options_from_question
from vo3rl.data.paths import resolve_video_path
from vo3rl.data.rowfields import (
    SEEKER_SOURCE_NAMES,
    data_type_from_source,
    interval_from_text,
    interval_text,
    optional_number,
    row_id,
)
from vo3rl.data.sample_json import parse_box, parse_interval
from vo3rl.data.schema import DataType, KeyFrame, Sample, SampleError, Task
from vo3rl.video.budgets import CROP_STRATEGIES
from vo3rl.video.types import VideoRef

VIDEO_PLACEHOLDER = "<video>"
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S)
_ROLE_NAMES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "system": "system"}


def _answer_and_task(raw: Any, data_type: DataType, task_name: Any, options: list[str], sample_id: str) -> tuple[str, Task]:
    if data_type is DataType.TEMPORAL_GROUNDING or task_name == Task.TEMPORAL_GROUNDING.value:
        if isinstance(raw, (list, tuple)):
            return interval_text(*parse_interval(raw, "solution.answer", sample_id)), Task.TEMPORAL_GROUNDING
        return interval_text(*interval_from_text(raw, sample_id)), Task.TEMPORAL_GROUNDING
    if task_name not in (None, Task.MCQ.value):
        try:
            task = Task(task_name)
        except ValueError:
            raise SampleError(sample_id, f"bad_field: task {task_name!r} is not a Task") from None
        if not isinstance(raw, str):
            raise SampleError(sample_id, f"bad_answer: answer must be a string, got {raw!r}")
        return raw, task
    if not options:
        raise SampleError(sample_id, "bad_field: a multiple-choice row needs options")
    return answer_letter(raw, options, sample_id), Task.MCQ


def _key_frames(raw: Any, sample_id: str) -> list[KeyFrame]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise SampleError(sample_id, "bad_field: key_frames must be a list")
    frames = []
    for i, kf in enumerate(raw):
        if not isinstance(kf, dict) or not isinstance(kf.get("boxes", {}), dict):
            raise SampleError(sample_id, f"bad_field: key_frames[{i}] must be {{'time', 'boxes'}}")
        time_s = optional_number(kf.get("time"), f"key_frames[{i}].time", sample_id)
        if time_s is None:
            raise SampleError(sample_id, f"bad_field: key_frames[{i}] has no time")
        boxes = {str(k): [parse_box(b, f"key_frames[{i}].{k}", sample_id) for b in v] for k, v in kf.get("boxes", {}).items()}
        frames.append(KeyFrame(time_s=time_s, boxes=boxes))
    return frames


def seeker_row_to_sample(row: Any, fallback_id: str, data_root: str | None = None) -> Sample:
    """One Seeker RL row -> Sample. Raises SampleError naming the row."""
    if not isinstance(row, dict):
        raise SampleError(fallback_id, f"bad_row: expected an object, got {type(row).__name__}")
    sample_id = row_id(row, ("doc_id", "id"), fallback_id)
    data_type = data_type_from_source(row.get("data_source"), sample_id)
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise SampleError(sample_id, "bad_field: question must be a non-empty string")
    raw_options = row.get("options")
    options = normalise_options(raw_options, sample_id) if raw_options else options_from_question(question)
    solution = row.get("solution")
    if not isinstance(solution, dict):
        raise SampleError(sample_id, "bad_field: solution must be {'answer', 'clue'}")
    answer, task = _answer_and_task(solution.get("answer"), data_type, row.get("task"), options, sample_id)
    clues, clue_texts = [], []
    for i, clue in enumerate(solution.get("clue") or []):
        if not isinstance(clue, dict):
            raise SampleError(sample_id, f"bad_field: solution.clue[{i}] must be {{'timestamp', 'text'}}")
        clues.append(parse_interval(clue.get("timestamp"), f"solution.clue[{i}].timestamp", sample_id))
        clue_texts.append(str(clue.get("text", "")))
    if task is Task.TEMPORAL_GROUNDING and not clues:
        clues = [interval_from_text(answer, sample_id)]
    fps = optional_number(row.get("frame_fps"), "frame_fps", sample_id)
    return Sample(
        id=sample_id,
        question=question,
        answer=answer,
        video=VideoRef(resolve_video_path(row.get("video"), data_root, sample_id), fps),
        task=task,
        data_type=data_type,
        options=options,
        duration_s=optional_number(row.get("duration"), "duration", sample_id),
        clues=clues,
        key_frames=_key_frames(row.get("key_frames"), sample_id),
        source=str(row.get("data_source")),
        extra={"clue_texts": clue_texts} if any(clue_texts) else {},
    )


def sample_to_seeker_row(sample: Sample) -> dict[str, Any]:
    """Sample -> Seeker RL row (with the project's optional keys when they carry information)."""
    texts = sample.extra.get("clue_texts") or [""] * len(sample.clues)
    row: dict[str, Any] = {
        "doc_id": sample.id,
        "data_source": SEEKER_SOURCE_NAMES[sample.data_type],
        "video": sample.video.path,
        "frame_fps": sample.video.frame_fps,
        "question": sample.question,
        "options": list(sample.options),
        "solution": {
            "answer": sample.answer,
            "clue": [{"timestamp": [s, e], "text": t} for (s, e), t in zip(sample.clues, texts)],
        },
    }
    if sample.duration_s is not None:
        row["duration"] = sample.duration_s
    if sample.task is not Task.MCQ:
        row["task"] = sample.task.value
    if sample.key_frames:
        row["key_frames"] = [
            {"time": kf.time_s, "boxes": {k: [list(b) for b in v] for k, v in kf.boxes.items()}} for kf in sample.key_frames
        ]
    return row


# --- SFT chats -------------------------------------------------------------------------------------


def _video_use(entry: Any, index: int, sample_id: str) -> tuple[VideoUse, Any]:
    """(view, url) of one `videos` entry; a bare string is a global view of that path."""
    if isinstance(entry, str):
        return VideoUse("global"), entry
    if not isinstance(entry, dict):
        raise SampleError(sample_id, f"bad_turn: videos[{index}] must be an object or a path")
    url = entry.get("url", entry.get("video", entry.get("path")))
    crop = entry.get("crop", [-1, -1])
    if crop is None or (isinstance(crop, (list, tuple)) and list(crop) == [-1, -1]):
        return VideoUse("global"), url
    start, end = parse_interval(crop, f"videos[{index}].crop", sample_id)
    strategy = entry.get("sample", "coarse")
    if strategy not in CROP_STRATEGIES:
        raise SampleError(sample_id, f"bad_turn: videos[{index}].sample {strategy!r} not in {CROP_STRATEGIES}")
    return VideoUse(strategy, start, end), url


def _messages(row: dict, sample_id: str) -> list[tuple[str, str]]:
    raw = row.get("messages", row.get("conversations"))
    if not isinstance(raw, list) or not raw:
        raise SampleError(sample_id, "bad_turn: 'messages' (or 'conversations') must be a non-empty list")
    out = []
    for i, msg in enumerate(raw):
        if not isinstance(msg, dict):
            raise SampleError(sample_id, f"bad_turn: messages[{i}] must be an object")
        role = _ROLE_NAMES.get(str(msg.get("role", msg.get("from"))).lower())
        text = msg.get("content", msg.get("value"))
        if role is None or not isinstance(text, str):
            raise SampleError(sample_id, f"bad_turn: messages[{i}] needs a known role and string content")
        out.append((role, text))
    return out


def seeker_sft_row_to_example(row: Any, fallback_id: str, data_root: str | None = None) -> SFTExample:
    """One Seeker SFT chat -> SFTExample (protocol video_o3, literal texts). Raises SampleError."""
    if not isinstance(row, dict):
        raise SampleError(fallback_id, f"bad_row: expected an object, got {type(row).__name__}")
    sample_id = row_id(row, ("doc_id", "id"), fallback_id)
    messages = _messages(row, sample_id)
    system = [text for role, text in messages if role == "system"]
    chat = [(role, text) for role, text in messages if role != "system"]
    videos = row.get("videos") or []
    if not isinstance(videos, list) or not videos:
        raise SampleError(sample_id, "bad_turn: 'videos' must be a non-empty list")
    uses = [_video_use(v, i, sample_id) for i, v in enumerate(videos)]
    if len({str(url).removeprefix("file://") for _, url in uses}) != 1:
        raise SampleError(sample_id, "bad_turn: every `videos` entry must view the same video")
    user_turns = [i for i, (role, _) in enumerate(chat) if role == "user"]
    placeholders = [text.count(VIDEO_PLACEHOLDER) for _, text in chat]
    if sum(placeholders) == 0 and len(user_turns) == len(uses):
        owners = user_turns
    elif sum(placeholders) == len(uses) and max(placeholders) <= 1:
        owners = [i for i, n in enumerate(placeholders) if n]
    else:
        raise SampleError(sample_id, f"bad_turn: {sum(placeholders)} <video> placeholders for {len(uses)} videos")
    turns = [ChatTurn(role=role, text=text) for role, text in chat]
    for owner, (use, _) in zip(owners, uses):
        turns[owner].video = use
    if not any(t.role == "assistant" for t in turns) or turns[0].video is None or turns[0].video.preset != "global":
        raise SampleError(sample_id, "bad_turn: a chat needs a first user turn with the global video and an assistant turn")

    first_user_text = chat[user_turns[0]][1].replace(VIDEO_PLACEHOLDER, "").strip()
    question = row.get("question") if isinstance(row.get("question"), str) else first_user_text
    raw_options = row.get("options")
    options = normalise_options(raw_options, sample_id) if raw_options else options_from_question(question)
    solution = row.get("solution") if isinstance(row.get("solution"), dict) else {}
    raw_answer = solution.get("answer")
    if raw_answer is None:
        found = [m for role, text in chat if role == "assistant" for m in _ANSWER_TAG.findall(text)]
        raw_answer = found[-1].strip() if found else None
    if "data_source" in row:
        data_type = data_type_from_source(row["data_source"], sample_id)
    else:
        uses_tool = any(u.preset in CROP_STRATEGIES for u, _ in uses)
        data_type = DataType.SINGLE_CLUE_TOOL if uses_tool else DataType.SINGLE_CLUE_NO_TOOL
    answer, task = _answer_and_task(raw_answer, data_type, row.get("task"), options, sample_id)
    clues = [
        parse_interval(c.get("timestamp") if isinstance(c, dict) else None, f"solution.clue[{i}]", sample_id)
        for i, c in enumerate(solution.get("clue") or [])
    ]
    sample = Sample(
        id=sample_id,
        question=question,
        answer=answer,
        video=VideoRef(resolve_video_path(uses[0][1], data_root, sample_id), optional_number(row.get("frame_fps"), "frame_fps", sample_id)),
        task=task,
        data_type=data_type,
        options=options,
        clues=clues,
        source=str(row.get("data_source", "seeker_sft")),
        extra={"system_prompt": system[0]} if system else {},
    )
    return SFTExample(sample=sample, turns=turns, protocol="video_o3")


def example_to_seeker_sft_row(example: SFTExample, system_prompt: str | None = None) -> dict[str, Any]:
    """SFTExample with literal texts on every turn -> Seeker SFT chat (the layout `seeker_sft_row_to_example`
    reads): one `videos` entry per user turn that shows video, no `<video>` placeholders. Raises ValueError
    for a turn without text (render it first) or a video turn that is not the global view or a crop."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    videos = []
    for index, turn in enumerate(example.turns):
        if turn.text is None:
            raise ValueError(f"example {example.sample.id!r}: turn {index} has no literal text; render it first")
        messages.append({"role": turn.role, "content": turn.text})
        if turn.video is None:
            continue
        if turn.video.preset == "global":
            videos.append({"url": example.sample.video.path, "crop": [-1, -1]})
        elif turn.video.preset in CROP_STRATEGIES:
            videos.append({"url": example.sample.video.path, "crop": [turn.video.start_s, turn.video.end_s],
                           "sample": turn.video.preset})
        else:
            raise ValueError(f"example {example.sample.id!r}: turn {index} shows a {turn.video.preset!r} view")
    rl_row = sample_to_seeker_row(example.sample)
    kept = ("doc_id", "data_source", "question", "options", "solution", "frame_fps", "task")
    return {"messages": messages, "videos": videos, **{k: rl_row[k] for k in kept if k in rl_row}}
