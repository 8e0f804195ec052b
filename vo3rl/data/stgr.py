"""STGR (Open-o3 Video's data) rows, for RL (Sample) and SFT (SFTExample, protocol open_o3).

Row (methods.md section 7):
    {"task", "source", "question", "answer", "reasoning_process" (SFT only), "video_path",
     "key_frames": [{"idx", "time", "path"}], "key_items": {"<frame idx>": {"<object>": [[x1,y1,x2,y2]]}},
     "image_path", "image_size"}
Tasks (the names Open-o3 Video's code uses): "General video QA MCQ" -> mcq, "General video QA
Free-form" and "temporal-spatial free-form QA" -> free_form, "temporal QA" -> temporal_grounding
(answer "[s, e]"), "temporal QA (MCQ)" -> tg_mcq (answer "X\\n[s, e]"). "visual QA" rows are images
and are skipped (reason unsupported). Boxes are normalised; a box with a coordinate above 1 is taken
as pixels and divided by `image_size` ([width, height]) when the row has one. MCQ options are the
lettered lines of the question. data_type is temporal_grounding for grounding tasks, else
single_clue_no_tool (Open-o3 Video has no tool; its rewards do not read the type).
"""
from __future__ import annotations

import re
from typing import Any

from vo3rl.data.chat import ChatTurn, SFTExample, VideoUse
from vo3rl.data.mcq import answer_letter, options_from_question, question_without_options
from vo3rl.data.paths import resolve_video_path
from vo3rl.data.rowfields import interval_from_text, interval_text, optional_number, row_id
from vo3rl.data.sample_json import parse_box
from vo3rl.data.schema import DataType, KeyFrame, Sample, SampleError, Task
from vo3rl.video.types import VideoRef

STGR_TASKS: dict[str, Task] = {
    "general video qa mcq": Task.MCQ,
    "general video qa free-form": Task.FREE_FORM,
    "temporal-spatial free-form qa": Task.FREE_FORM,
    "temporal qa": Task.TEMPORAL_GROUNDING,
    "temporal qa (mcq)": Task.TG_MCQ,
}
IMAGE_TASKS = ("visual qa",)
_TG_MCQ = re.compile(r"^\s*\(?([A-Z])\)?\.?\s*\n\s*(\[.*\])\s*$", re.S)


def _normalised_box(raw: Any, size: Any, what: str, sample_id: str) -> tuple[float, float, float, float]:
    box = parse_box(raw, what, sample_id)
    if max(box) <= 1.0:
        return box
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, (int, float)) and v > 0 for v in size):
        width, height = float(size[0]), float(size[1])
        return (box[0] / width, box[1] / height, box[2] / width, box[3] / height)
    raise SampleError(sample_id, f"bad_field: {what} {raw!r} is not normalised and the row has no image_size")


def _key_frames(row: dict, sample_id: str) -> list[KeyFrame]:
    times = {}
    for i, kf in enumerate(row.get("key_frames") or []):
        if not isinstance(kf, dict):
            raise SampleError(sample_id, f"bad_field: key_frames[{i}] must be an object")
        time_s = optional_number(kf.get("time"), f"key_frames[{i}].time", sample_id)
        if time_s is None:
            raise SampleError(sample_id, f"bad_field: key_frames[{i}] has no time")
        times[str(kf.get("idx", i))] = time_s
    items = row.get("key_items") or {}
    if not isinstance(items, dict):
        raise SampleError(sample_id, "bad_field: key_items must map frame idx -> {object: [boxes]}")
    frames = {idx: KeyFrame(time_s=t) for idx, t in times.items()}
    for idx, objects in items.items():
        if str(idx) not in frames or not isinstance(objects, dict):
            raise SampleError(sample_id, f"bad_field: key_items[{idx!r}] names no key frame")
        for name, boxes in objects.items():
            if not isinstance(boxes, list):
                raise SampleError(sample_id, f"bad_field: key_items[{idx!r}][{name!r}] must be a list of boxes")
            if boxes and isinstance(boxes[0], (int, float)):
                boxes = [boxes]  # a single box written flat
            frames[str(idx)].boxes[str(name)] = [
                _normalised_box(b, row.get("image_size"), f"key_items[{idx!r}][{name!r}]", sample_id) for b in boxes
            ]
    return sorted(frames.values(), key=lambda kf: kf.time_s)


def stgr_row_to_sample(row: Any, fallback_id: str, data_root: str | None = None) -> Sample:
    """One STGR row -> Sample. Raises SampleError naming the row."""
    if not isinstance(row, dict):
        raise SampleError(fallback_id, f"bad_row: expected an object, got {type(row).__name__}")
    sample_id = row_id(row, ("id", "doc_id", "qid"), fallback_id)
    task_name = str(row.get("task", "")).strip().lower()
    if task_name in IMAGE_TASKS or (not row.get("video_path") and row.get("image_path")):
        raise SampleError(sample_id, f"unsupported: image row (task {row.get('task')!r}); only video rows are read")
    if task_name not in STGR_TASKS:
        raise SampleError(sample_id, f"bad_field: unknown STGR task {row.get('task')!r}")
    task = STGR_TASKS[task_name]
    question, answer = row.get("question"), row.get("answer")
    if not isinstance(question, str) or not question.strip() or not isinstance(answer, str):
        raise SampleError(sample_id, "bad_field: question and answer must be strings")
    options, clues = [], []
    if task is Task.MCQ:
        options = options_from_question(question)
        answer = answer_letter(answer, options, sample_id) if options else answer.strip()
    elif task is Task.TEMPORAL_GROUNDING:
        clues = [interval_from_text(answer, sample_id)]
        answer = interval_text(*clues[0])
    elif task is Task.TG_MCQ:
        match = _TG_MCQ.match(answer)
        if not match:
            raise SampleError(sample_id, f"bad_answer: TG-MCQ answer must read 'X\\n[s, e]', got {answer!r}")
        clues = [interval_from_text(match.group(2), sample_id)]
        options = options_from_question(question)
        answer = f"{match.group(1)}\n{interval_text(*clues[0])}"
    grounding = task in (Task.TEMPORAL_GROUNDING, Task.TG_MCQ)
    return Sample(
        id=sample_id,
        question=question_without_options(question) if options else question,
        answer=answer,
        video=VideoRef(resolve_video_path(row.get("video_path"), data_root, sample_id)),
        task=task,
        data_type=DataType.TEMPORAL_GROUNDING if grounding else DataType.SINGLE_CLUE_NO_TOOL,
        options=options,
        clues=clues,
        key_frames=_key_frames(row, sample_id),
        source=str(row.get("source", "stgr")),
    )


STGR_TASK_NAMES: dict[Task, str] = {
    Task.MCQ: "General video QA MCQ", Task.FREE_FORM: "General video QA Free-form",
    Task.TEMPORAL_GROUNDING: "temporal QA", Task.TG_MCQ: "temporal QA (MCQ)",
}


def sample_to_stgr_row(sample: Sample, reasoning: str | None = None) -> dict[str, Any]:
    """Sample -> STGR row (the layout `stgr_row_to_sample` reads; with `reasoning`, an SFT row). Options
    become lettered lines of the question, boxes stay normalised. Raises ValueError for a task STGR lacks."""
    if sample.task not in STGR_TASK_NAMES:
        raise ValueError(f"sample {sample.id!r}: STGR has no task {sample.task.value!r}")
    question = "\n".join([sample.question, *sample.options]) if sample.options else sample.question
    row: dict[str, Any] = {
        "id": sample.id, "task": STGR_TASK_NAMES[sample.task], "source": sample.source, "question": question,
        "answer": sample.answer, "video_path": sample.video.path,
        "key_frames": [{"idx": i, "time": kf.time_s, "path": ""} for i, kf in enumerate(sample.key_frames)],
        "key_items": {str(i): {name: [list(b) for b in boxes] for name, boxes in kf.boxes.items()}
                      for i, kf in enumerate(sample.key_frames) if kf.boxes},
    }
    if reasoning is not None:
        row["reasoning_process"] = reasoning
    return row


def stgr_row_to_example(row: Any, fallback_id: str, data_root: str | None = None) -> SFTExample:
    """One STGR SFT row -> a two-turn open_o3 example: the templated question with the video, then
    `<think>reasoning</think><answer>answer</answer>` (tags added when the row's text lacks them)."""
    sample = stgr_row_to_sample(row, fallback_id, data_root)
    reasoning = row.get("reasoning_process")
    if not isinstance(reasoning, str) or not reasoning.strip():
        raise SampleError(sample.id, "bad_field: an SFT row needs reasoning_process")
    text = reasoning.strip()
    if "<think>" not in text:
        text = f"<think>{text}</think>"
    if "<answer>" not in text:
        text += f"<answer>{row['answer'].strip()}</answer>"
    turns = [ChatTurn("user", None, VideoUse("open_o3")), ChatTurn("assistant", text)]
    return SFTExample(sample=sample, turns=turns, protocol="open_o3")
