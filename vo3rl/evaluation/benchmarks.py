"""The benchmarks `vo3rl eval --benchmark NAME` knows: which reader reads its published file, and how
its episode records (`episodes.episode_record`) become the numbers its paper reports.

Every summary has `n` (episodes scored), `failed` (samples whose video could not be read, or whose
episode was lost) and the headline accuracy twice: over all samples, a failed one counting as wrong
(`accuracy`), and over the readable ones (`accuracy_readable`). Multiple-choice benchmarks add the
accuracy per task type (`task/<type>`) when the file has one; MLVU adds `M-Avg`, VideoMME its
short / medium / long split; Charades-STA reports R@0.3 / 0.5 / 0.7 and mIoU (a failed sample
counting as IoU 0 in the first set, and left out of the `_readable` set); V-STAR runs both its chained
conversations per row and reports accuracy, m_tIoU and m_vIoU per chain, AM, LGM, mAM and mLGM
(`vo3rl.evaluation.vstar`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from vo3rl.evaluation.episodes import evaluate_records
from vo3rl.evaluation.metrics import accuracy_by_group, grounding_recall, m_avg, videomme_split
from vo3rl.evaluation.vstar import vstar, vstar_records
from vo3rl.registry import Registry

TASK_GROUP_KEYS = ("task_type", "question_type", "Question Type", "question_category")


@dataclass(frozen=True)
class Benchmark:
    """`data_format`: the reader of its file (`vo3rl.data.readers.SAMPLE_FORMATS`); `summarise(records,
    failed)`: its metrics, fractions in [0, 1]; `records(rollout, rewards, samples) -> (metrics,
    records)`: how its episodes run and are scored (one greedy episode each, unless it says otherwise)."""

    name: str
    data_format: str
    summarise: Callable[[list[dict], int], dict]
    records: Callable = evaluate_records


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")


def _accuracy(records: list[dict]) -> list[float]:
    return [float(r["components"].get("accuracy", 0.0)) for r in records]


def _task_of(record: dict) -> str | None:
    groups = record.get("groups", {})
    return next((str(groups[k]) for k in TASK_GROUP_KEYS if k in groups), None)


def _counts(records: list[dict], failed: int) -> dict:
    return {"n": len(records), "failed": failed}


def multiple_choice(records: list[dict], failed: int) -> dict:
    """Accuracy over all samples and over readable ones, and per task type when every record has one."""
    correct = _accuracy(records)
    out = _counts(records, failed)
    out["accuracy"] = sum(correct) / (len(correct) + failed) if correct or failed else 0.0
    out["accuracy_readable"] = sum(correct) / len(correct) if correct else 0.0
    tasks = [_task_of(r) for r in records]
    if records and all(t is not None for t in tasks):
        out.update({f"task/{task}": value for task, value in sorted(accuracy_by_group(correct, tasks).items())})
    return out


def mlvu(records: list[dict], failed: int) -> dict:
    """MLVU: multiple choice plus M-Avg, the mean of the per-task accuracies (readable samples)."""
    out = multiple_choice(records, failed)
    tasks = [_task_of(r) for r in records]
    if records and all(t is not None for t in tasks):
        out["M-Avg"] = m_avg(_accuracy(records), tasks)
    return out


def videomme(records: list[dict], failed: int) -> dict:
    """VideoMME: multiple choice plus accuracy per duration category (readable samples)."""
    out = multiple_choice(records, failed)
    durations = [r.get("groups", {}).get("duration") for r in records]
    if records and all(d is not None for d in durations):
        split = videomme_split(_accuracy(records), durations)
        out.update({f"duration/{name}": value for name, value in split.items() if name != "overall"})
    return out


def charades_sta(records: list[dict], failed: int) -> dict:
    """Charades-STA: R@IoU and mIoU from each episode's temporal IoU (the accuracy term of a
    temporal-grounding sample)."""
    ious = _accuracy(records)
    out = _counts(records, failed)
    out.update(grounding_recall(ious + [0.0] * failed))
    out.update({f"{name}_readable": value for name, value in grounding_recall(ious).items()})
    return out


for _name, _format, _summary in (
    ("mlvu", "mcq", mlvu), ("videomme", "mcq", videomme), ("lvbench", "lvbench", multiple_choice),
    ("longvideobench", "mcq", multiple_choice), ("video_holmes", "mcq", multiple_choice),
    ("videommmu", "mcq", multiple_choice), ("mmvu", "mcq", multiple_choice),
    ("charades_sta", "charades_sta", charades_sta),
):
    BENCHMARKS.add(_name, Benchmark(_name, _format, _summary))
BENCHMARKS.add("vstar", Benchmark("vstar", "vstar", vstar, vstar_records))
