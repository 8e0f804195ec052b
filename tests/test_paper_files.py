"""The synthetic set in the papers' on-disk formats (vo3rl.sft.paper_files): read back through the papers'
readers it gives the same samples and, rendered, the same tokens as the project's own files."""
from __future__ import annotations

import json
import os

import pytest

from vo3rl.config.synth import SynthConfig
from vo3rl.data.readers import read_samples, read_sft
from vo3rl.data.skips import SkipLog
from vo3rl.data.synth import generate
from vo3rl.sft.paper_files import PAPER_FILES, STGR_EVAL, STGR_RL, STGR_SFT, write_paper_files
from vo3rl.video.budgets import resolved_presets

SMALL = dict(n_train_videos=6, n_eval_videos=3, duration_s=24.0, width=64, height=64, include_grounding=True,
             data_types=["single_clue_tool", "multi_clue_tool", "single_clue_no_tool", "multi_clue_no_tool"])


@pytest.fixture(scope="module")
def paper_set(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("paper") / "set")
    generate(SynthConfig(seed=5, **SMALL), out)
    presets = resolved_presets({})
    counts = write_paper_files(out, presets)
    return out, presets, counts


def _trajectory_ids(example, tokenizer, presets, root):
    from vo3rl.agent.render import from_sft_example
    from vo3rl.video.cache import DecodeCache
    from vo3rl.video.sampler import sample_clip

    cache = DecodeCache()
    ref = example.sample.video

    def clip_for(use):
        return sample_clip(ref, presets[use.preset].window(use.start_s, use.end_s), cache)

    return list(from_sft_example(example, tokenizer, clip_for).token_ids)


def test_every_paper_file_is_written_and_read_without_skips(paper_set):
    out, _, counts = paper_set
    assert set(counts) == set(PAPER_FILES) and all(n > 0 for n in counts.values()), counts
    for name, fmt, reader in (("sft_stage1.jsonl", "seeker_sft", read_sft), ("sft_stage2_multi_clue.jsonl", "seeker_sft", read_sft),
                              (STGR_SFT, "stgr_sft", read_sft), ("rl_eval.jsonl", "seeker", read_samples),
                              (STGR_RL, "stgr", read_samples), (STGR_EVAL, "stgr", read_samples)):
        skips = SkipLog()
        items = list(reader(os.path.join(out, name), fmt, out, skips))
        assert len(items) == counts[name] and skips.total == 0, (name, skips.counts)
    assert isinstance(json.load(open(os.path.join(out, STGR_SFT))), list)  # the released file is a JSON list


def test_seeker_chats_render_the_same_tokens_as_our_examples(paper_set, tokenizer):
    out, presets, _ = paper_set
    ours = {e.sample.id: e for e in read_sft(os.path.join(out, "sft_train.jsonl"), "chat", out) if e.protocol == "video_o3"}
    theirs = [*read_sft(os.path.join(out, "sft_stage1.jsonl"), "seeker_sft", out),
              *read_sft(os.path.join(out, "sft_stage2_multi_clue.jsonl"), "seeker_sft", out)]
    assert sorted(e.sample.id for e in theirs) == sorted(ours)
    multi = [e for e in theirs if len(e.turns) > 4]
    assert multi, "some chats must call the tool more than once"
    for example in theirs:
        mine = ours[example.sample.id]
        assert (example.sample.answer, example.sample.options, example.sample.clues) == (
            mine.sample.answer, mine.sample.options, mine.sample.clues)
        assert _trajectory_ids(example, tokenizer, presets, out) == _trajectory_ids(mine, tokenizer, presets, out)


def test_stgr_rows_render_the_same_tokens_as_our_examples(paper_set, tokenizer):
    out, presets, _ = paper_set
    ours = {e.sample.id: e for e in read_sft(os.path.join(out, "sft_train.jsonl"), "chat", out) if e.protocol == "open_o3"}
    theirs = list(read_sft(os.path.join(out, STGR_SFT), "stgr_sft", out))
    assert theirs and {e.sample.id for e in theirs} <= set(ours)
    for example in theirs:
        mine = ours[example.sample.id]
        assert example.sample.question == mine.sample.question  # the option lines are not rendered twice
        assert _trajectory_ids(example, tokenizer, presets, out) == _trajectory_ids(mine, tokenizer, presets, out)
