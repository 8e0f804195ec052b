"""The synthetic long-video clue-seeking dataset: `generate(config, out_dir)`.

Writes, under `out_dir`:
    videos/train_NNNN.mp4, videos/eval_NNNN.mp4
    rl_train.jsonl   Seeker-style RL rows (with the optional duration / task / key_frames keys)
    sft_train.jsonl  SFTExample JSONL, one example per training question and protocol
    eval.jsonl       Seeker-style rows on held-out videos (no video is shared with training)
    manifest.json    seed, knobs, counts (with `recovery_fraction` > 0, `recovery_chats`:
                     the SFT chats holding a refused call)
Video paths in the rows are relative to `out_dir`: read them with `data_root=out_dir`.
Deterministic: every video draws from its own generator seeded by (seed, split, index), so the same
seed gives byte-identical JSONL and identical videos. See vo3rl/config/synth.py (the knobs), synth_plan, synth_text.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from typing import Iterator

import numpy as np

from vo3rl.config.synth import SynthConfig
from vo3rl.data.chat import SFTExample, dumps_example
from vo3rl.data.schema import DataType, Sample
from vo3rl.data.seeker import sample_to_seeker_row
from vo3rl.data.synth_plan import VideoPlan, plan_video
from vo3rl.data.synth_text import build_sample, open_o3_example, video_o3_example
from vo3rl.data.synth_video import render_frames, write_mp4
from vo3rl.log import progress

log = logging.getLogger(__name__)
SPLITS = {"train": 0, "eval": 1}
FORMAT_VERSION = 1


def _question_types(cfg: SynthConfig) -> list[DataType]:
    types = [DataType(t) for t in cfg.data_types]
    return types + [DataType.TEMPORAL_GROUNDING] if cfg.include_grounding else types


def iter_plans(cfg: SynthConfig, split: str) -> Iterator[VideoPlan]:
    """The split's video plans; data types cycle over questions so every type is equally common."""
    types = _question_types(cfg)
    count = cfg.n_train_videos if split == "train" else cfg.n_eval_videos
    for v in range(count):
        rng = np.random.default_rng([cfg.seed, SPLITS[split], v])
        wanted = [types[(v * cfg.questions_per_video + q) % len(types)] for q in range(cfg.questions_per_video)]
        yield plan_video(f"{split}_{v:04d}", cfg, rng, wanted)


def _sft_examples(plan: VideoPlan, question, sample: Sample, cfg: SynthConfig) -> list[SFTExample]:
    makers = {"video_o3": video_o3_example, "open_o3": open_o3_example}
    return [makers[p](plan, question, sample, cfg) for p in cfg.sft_protocols]


def generate(cfg: SynthConfig, out_dir: str) -> dict:
    """Write the dataset to `out_dir` and return the manifest. Raises ValueError for bad knobs.
    Shows a progress bar on an interactive terminal (vo3rl.log.progress)."""
    cfg.validate()
    os.makedirs(os.path.join(out_dir, "videos"), exist_ok=True)
    counts: dict = {"videos": {}, "questions": {}, "sft_examples": {p: 0 for p in cfg.sft_protocols},
                    "video_seconds": 0.0, "dropped_questions": 0, "dropped_distractors": 0}
    if cfg.recovery_fraction > 0:  # only then: a set made without recovery keeps its manifest's counts
        counts["recovery_chats"] = 0
    outputs = {"train": "rl_train.jsonl", "eval": "eval.jsonl"}
    with open(os.path.join(out_dir, "sft_train.jsonl"), "w", encoding="utf-8") as sft_file:
        for split, filename in outputs.items():
            by_type: dict[str, int] = {}
            n_videos = 0
            total = cfg.n_train_videos if split == "train" else cfg.n_eval_videos
            with open(os.path.join(out_dir, filename), "w", encoding="utf-8") as rows_file:
                for plan in progress(iter_plans(cfg, split), desc=f"synth {split}", total=total, unit="video"):
                    rel_path = f"videos/{plan.name}.mp4"
                    write_mp4(os.path.join(out_dir, rel_path), render_frames(plan, cfg.event_shape), plan.fps, cfg.crf)
                    n_videos += 1
                    counts["video_seconds"] += plan.duration_s
                    counts["dropped_questions"] += plan.dropped_questions
                    counts["dropped_distractors"] += plan.dropped_distractors
                    for qi, question in enumerate(plan.questions):
                        sample = build_sample(plan, question, qi, rel_path, cfg.question_style)
                        rows_file.write(json.dumps(sample_to_seeker_row(sample), ensure_ascii=False) + "\n")
                        by_type[sample.data_type.value] = by_type.get(sample.data_type.value, 0) + 1
                        if split == "train":
                            for example in _sft_examples(plan, question, sample, cfg):
                                sft_file.write(dumps_example(example) + "\n")
                                counts["sft_examples"][example.protocol] += 1
                                if not all(t.trained for t in example.turns):
                                    counts["recovery_chats"] += 1
            counts["videos"][split] = n_videos
            counts["questions"][split] = dict(sorted(by_type.items()))
    if counts["dropped_questions"]:
        log.warning("synth: %d questions could not be placed (too few free scenes); see manifest", counts["dropped_questions"])
    manifest = {
        "format_version": FORMAT_VERSION,
        "seed": cfg.seed,
        "config": asdict(cfg),
        "counts": counts,
        "files": {"rl": "rl_train.jsonl", "sft": "sft_train.jsonl", "eval": "eval.jsonl", "videos": "videos/"},
        "data_root": "paths in the rows are relative to this folder",
    }
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return manifest
