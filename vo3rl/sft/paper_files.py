"""The synthetic set written again in the papers' on-disk formats, under the file names the paper recipes
read, so a smoke run goes through the same readers as a run on the released data.

In `synth_dir` (made by `vo3rl.data.synth.generate`), beside the project's own files:
    sft_stage1.jsonl             Seeker SFT chats (video_o3) of the single-clue and no-tool questions
    sft_stage2_multi_clue.jsonl  Seeker SFT chats of the multi-clue questions (every chat when there are none)
    rl_eval.jsonl                the held-out Seeker RL rows (eval.jsonl under the released data's name)
    STGR-CoT-30k.json            STGR SFT rows (open_o3, with reasoning_process), a JSON list
    stgr_rl.jsonl                STGR rows of the training questions
    STGR-RL-eval.json            STGR rows of the held-out questions, a JSON list
Seeker chats keep literal texts, so every user turn is rendered here with the recipe's templates and the
sampler (which decodes the video to count its frames): reading a chat back gives the same tokens as
rendering the project's own example.
"""
from __future__ import annotations

import json
import os
import shutil

from vo3rl.agent.prompts import render_clip_observation, system_prompt
from vo3rl.agent.render import first_user_text
from vo3rl.config.prompts import PromptTemplates
from vo3rl.data.chat import ChatTurn, SFTExample, read_examples
from vo3rl.data.readers import read_samples
from vo3rl.data.schema import DataType, Task
from vo3rl.data.seeker import example_to_seeker_sft_row
from vo3rl.data.stgr import STGR_TASK_NAMES, sample_to_stgr_row
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import VideoRef

SEEKER_STAGE1, SEEKER_STAGE2, SEEKER_EVAL = "sft_stage1.jsonl", "sft_stage2_multi_clue.jsonl", "rl_eval.jsonl"
STGR_SFT, STGR_RL, STGR_EVAL = "STGR-CoT-30k.json", "stgr_rl.jsonl", "STGR-RL-eval.json"
PAPER_FILES = (SEEKER_STAGE1, SEEKER_STAGE2, SEEKER_EVAL, STGR_SFT, STGR_RL, STGR_EVAL)
MULTI_CLUE = (DataType.MULTI_CLUE_TOOL, DataType.MULTI_CLUE_NO_TOOL)


def literal_example(example: SFTExample, presets: dict, templates: PromptTemplates, data_root: str,
                    cache: DecodeCache) -> SFTExample:
    """`example` with every template-rendered user turn replaced by its literal text."""
    video = VideoRef(os.path.join(data_root, example.sample.video.path), example.sample.video.frame_fps)
    turns = []
    for index, turn in enumerate(example.turns):
        if turn.role == "user" and turn.text is None:
            clip = sample_clip(video, presets[turn.video.preset].window(turn.video.start_s, turn.video.end_s), cache)
            text = (first_user_text(example.sample, clip, templates, example.protocol) if index == 0
                    else render_clip_observation(clip, templates))
            turn = ChatTurn(turn.role, text, turn.video)
        turns.append(turn)
    return SFTExample(example.sample, turns, example.protocol)


def _write_jsonl(path: str, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _write_json_list(path: str, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(rows, fh, ensure_ascii=False, indent=1)
        fh.write("\n")


def write_paper_files(synth_dir: str, presets: dict, templates: PromptTemplates | None = None) -> dict[str, int]:
    """Write PAPER_FILES into `synth_dir`; returns rows per file. `presets`: name -> SamplingSpec, the
    recipe's (they decide the frame counts the sampling lines state)."""
    templates = templates or PromptTemplates()
    cache = DecodeCache()
    examples = list(read_examples(os.path.join(synth_dir, "sft_train.jsonl")))
    seeker = [literal_example(e, presets, templates, synth_dir, cache) for e in examples if e.protocol == "video_o3"]
    chats = [example_to_seeker_sft_row(e, system_prompt(templates)) for e in seeker]
    multi = [c for c, e in zip(chats, seeker) if e.sample.data_type in MULTI_CLUE]
    stage1 = [c for c, e in zip(chats, seeker) if e.sample.data_type not in MULTI_CLUE]
    stgr_sft = [sample_to_stgr_row(e.sample, e.turns[-1].text) for e in examples
                if e.protocol == "open_o3" and e.sample.task in STGR_TASK_NAMES]
    stgr_train = [sample_to_stgr_row(s) for s in read_samples(os.path.join(synth_dir, "rl_train.jsonl"), "seeker")
                  if s.task in STGR_TASK_NAMES]
    stgr_eval = [sample_to_stgr_row(s) for s in read_samples(os.path.join(synth_dir, "eval.jsonl"), "seeker")
                 if s.task in (Task.MCQ, Task.TEMPORAL_GROUNDING)]
    _write_jsonl(os.path.join(synth_dir, SEEKER_STAGE1), stage1 or chats)
    _write_jsonl(os.path.join(synth_dir, SEEKER_STAGE2), multi or chats)
    shutil.copyfile(os.path.join(synth_dir, "eval.jsonl"), os.path.join(synth_dir, SEEKER_EVAL))
    _write_json_list(os.path.join(synth_dir, STGR_SFT), stgr_sft)
    _write_jsonl(os.path.join(synth_dir, STGR_RL), stgr_train)
    _write_json_list(os.path.join(synth_dir, STGR_EVAL), stgr_eval)
    with open(os.path.join(synth_dir, SEEKER_EVAL), encoding="utf-8") as fh:
        n_eval = sum(1 for line in fh if line.strip())
    return {SEEKER_STAGE1: len(stage1 or chats), SEEKER_STAGE2: len(multi or chats), SEEKER_EVAL: n_eval,
            STGR_SFT: len(stgr_sft), STGR_RL: len(stgr_train), STGR_EVAL: len(stgr_eval)}
