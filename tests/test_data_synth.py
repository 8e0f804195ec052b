"""The synthetic clue dataset: determinism, readable outputs, and the visibility promises checked
against the real sampler's frames."""
from __future__ import annotations

import filecmp
import json
import os
import re

import numpy as np
import pytest

from vo3rl.config.synth import COLOURS, SynthConfig
from vo3rl.data.readers import read_seeker, read_sft
from vo3rl.data.schema import DataType, Task
from vo3rl.data.skips import SkipLog
from vo3rl.data.synth import generate, iter_plans
from vo3rl.data.synth_plan import TOOL_TYPES
from vo3rl.data.synth_text import event_interval
from vo3rl.video.budgets import crop_spec, preset
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import SamplingSpec, VideoRef

SMALL = dict(n_train_videos=6, n_eval_videos=3, duration_s=24.0, width=64, height=64, include_grounding=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synth") / "a")
    cfg = SynthConfig(seed=3, **SMALL)
    return cfg, out, generate(cfg, out)


def test_same_seed_same_bytes_and_frames(dataset, tmp_path):
    cfg, out, _ = dataset
    again = str(tmp_path / "b")
    generate(SynthConfig(seed=3, **SMALL), again)
    for name in ("rl_train.jsonl", "sft_train.jsonl", "eval.jsonl", "manifest.json"):
        assert filecmp.cmp(os.path.join(out, name), os.path.join(again, name), shallow=False), name
    for video in sorted(os.listdir(os.path.join(out, "videos"))):
        a = sample_clip(VideoRef(os.path.join(out, "videos", video)), SamplingSpec(fps=4.0, max_frames=400, min_tokens=0))
        b = sample_clip(VideoRef(os.path.join(again, "videos", video)), SamplingSpec(fps=4.0, max_frames=400, min_tokens=0))
        assert np.array_equal(a.frames, b.frames), video


def test_other_seed_differs(dataset, tmp_path):
    _, out, _ = dataset
    other = str(tmp_path / "c")
    generate(SynthConfig(seed=4, **SMALL), other)
    assert not filecmp.cmp(os.path.join(out, "rl_train.jsonl"), os.path.join(other, "rl_train.jsonl"), shallow=False)


def test_outputs_read_back(dataset):
    cfg, out, manifest = dataset
    skips = SkipLog()
    train = list(read_seeker(os.path.join(out, "rl_train.jsonl"), data_root=out, skips=skips))
    evals = list(read_seeker(os.path.join(out, "eval.jsonl"), data_root=out, skips=skips))
    sft = list(read_sft(os.path.join(out, "sft_train.jsonl"), "chat", data_root=out, skips=skips))
    assert skips.total == 0
    assert len(train) == sum(manifest["counts"]["questions"]["train"].values()) == 6
    assert len(evals) == 3 and len(sft) == 2 * len(train)
    assert {s.video.path for s in train}.isdisjoint({s.video.path for s in evals})
    assert all(os.path.isfile(s.video.path) for s in train + evals)
    # Five question types cycle over six training videos: every type appears.
    assert {s.data_type for s in train} == set(DataType)
    for s in train:
        assert s.duration_s == 24.0 and s.clues and len(s.key_frames) == len(s.clues)
        if s.task is Task.MCQ:
            assert len(s.options) == 4 and s.answer in "ABCD"
    assert manifest["seed"] == 3 and manifest["config"]["duration_s"] == 24.0


def _region_colour(frame, box, width, height):
    x1, y1, x2, y2 = box
    patch = frame[int(y1 * height) + 4 : int(y2 * height) - 4, int(x1 * width) + 4 : int(x2 * width) - 4]
    return patch.reshape(-1, 3).mean(axis=0)


def _shows(clip, colour, box):
    target = np.array(COLOURS[colour], dtype=np.float64)
    return any(np.abs(_region_colour(f, box, clip.width, clip.height) - target).max() < 30 for f in clip.frames)


def test_global_view_misses_brief_clues_and_crops_catch_them(dataset):
    cfg, out, _ = dataset
    cache = DecodeCache()
    global_spec = preset("global", max_frames=cfg.global_max_frames, fps=cfg.global_fps, min_tokens=0)
    checked = {"tool": 0, "no_tool": 0}
    for plan in iter_plans(cfg, "train"):
        ref = VideoRef(os.path.join(out, "videos", f"{plan.name}.mp4"))
        overview = sample_clip(ref, global_spec, cache)
        for q in plan.questions:
            for e in q.clues:
                box = tuple(v / s for v, s in zip(e.box_px, (plan.width, plan.height, plan.width, plan.height)))
                if q.data_type in TOOL_TYPES:
                    start, end = plan.scenes[e.scene].first_frame / plan.fps, plan.scenes[e.scene].end_frame / plan.fps
                    crop = sample_clip(ref, crop_spec(cfg.crop_strategy, start, end), cache)
                    assert not _shows(overview, e.colour, box), (plan.name, e)
                    assert _shows(crop, e.colour, box), (plan.name, e)
                    checked["tool"] += 1
                else:
                    assert _shows(overview, e.colour, box), (plan.name, e)
                    checked["no_tool"] += 1
                s, t = event_interval(plan, e)
                assert 0 <= s < t <= plan.duration_s
    assert checked["tool"] >= 3 and checked["no_tool"] >= 3


def test_sft_trajectories_follow_the_protocols(dataset):
    cfg, out, _ = dataset
    grounding = re.compile(r'^<think>[^<]+</think>\n<grounding>(\{.*\})</grounding>\n$', re.S)
    answer = re.compile(r"^<think>[^<]+</think>\n<answer>(.+)</answer>\n$", re.S)
    for ex in read_sft(os.path.join(out, "sft_train.jsonl"), "chat", data_root=out):
        s = ex.sample
        if ex.protocol == "open_o3":
            (text,) = [t.text for t in ex.turns if t.role == "assistant"]
            assert re.search(r"<obj>[a-z ]+</obj><box>\[\d+,\d+,\d+,\d+\]</box>at<t>[\d.]+</t>s", text), text
            assert text.endswith("</answer>")
            continue
        assistants = [t for t in ex.turns if t.role == "assistant"]
        calls = [json.loads(grounding.match(t.text).group(1)) for t in assistants[:-1]]
        final = answer.match(assistants[-1].text)
        assert final, assistants[-1].text
        if s.task is Task.MCQ:
            assert final.group(1) == s.answer
        else:
            assert json.loads(final.group(1))["temporal_segment"] == list(s.clues[0])
        # Tool questions call the tool once per clue, over a window that covers the clue.
        expected_calls = len(s.clues) if s.data_type in (DataType.SINGLE_CLUE_TOOL, DataType.MULTI_CLUE_TOOL) else 0
        assert len(calls) == expected_calls
        for call, (cs, ce) in zip(calls, s.clues):
            t0, t1 = call["temporal_segment"]
            assert t0 <= cs and ce <= t1 and call["sampling_strategy"] == cfg.crop_strategy
        observations = [t for t in ex.turns[1:] if t.role == "user"]
        assert all(t.text is None and t.video.preset == cfg.crop_strategy for t in observations)
        assert len(observations) == len(calls)


def test_knobs_change_the_data(tmp_path):
    cfg = SynthConfig(seed=1, n_train_videos=2, n_eval_videos=0, duration_s=40.0, scene_s=5.0, width=48, height=32,
                      n_distractors=4, event_size=0.5, event_shape="disc", n_options=3, question_style="scene",
                      data_types=["multi_clue_no_tool"], sft_protocols=["video_o3"])
    manifest = generate(cfg, str(tmp_path))
    rows = [json.loads(line) for line in open(tmp_path / "rl_train.jsonl")]
    assert len(rows) == 2 and all(len(r["options"]) == 3 for r in rows)
    assert all("background is" in r["question"] for r in rows) and all(r["duration"] == 40.0 for r in rows)
    # event_size 0.5 halves the region's box about its centre.
    boxes = [b for r in rows for kf in r["key_frames"] for bs in kf["boxes"].values() for b in bs]
    assert all(abs((b[2] - b[0]) * (b[3] - b[1]) - 0.125) < 0.02 or abs((b[2] - b[0]) * (b[3] - b[1]) - 0.25) < 0.02 for b in boxes)
    assert manifest["counts"]["sft_examples"] == {"video_o3": 2}


@pytest.mark.parametrize("bad", [dict(brief_event_s=3.0), dict(n_options=1), dict(duration_s=8.0), dict(event_size=0.0),
                                 dict(data_types=["nope"]), dict(question_style="riddle")])
def test_bad_knobs_are_refused(tmp_path, bad):
    with pytest.raises(ValueError):
        generate(SynthConfig(**bad), str(tmp_path))


def _data_command(argv):
    import argparse

    from vo3rl.commands import data

    parser = argparse.ArgumentParser()
    data.add_arguments(parser)
    return data.run(parser.parse_args(argv))


def test_data_command_synth_convert_check(tmp_path, capsys):
    out = str(tmp_path / "s")
    assert _data_command(["synth", out, "n_train_videos=2", "n_eval_videos=1", "duration_s=24", "seed=5"]) == 0
    assert json.loads(capsys.readouterr().out)["videos"] == {"train": 2, "eval": 1}
    assert _data_command(["synth", out, "no_such_knob=1"]) == 2
    assert _data_command(["synth", out, "n_options=1"]) == 2
    parquet = str(tmp_path / "rl.parquet")
    assert _data_command(["convert", os.path.join(out, "rl_train.jsonl"), parquet, "--from", "seeker", "--to", "verl"]) == 0
    capsys.readouterr()
    assert _data_command(["check", parquet, "--format", "verl", "--data-root", out, "--videos"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows_ok"] == 2 and report["videos_ok"] == 2
    # The same rows against a root without the videos: every video is reported missing, exit status 1.
    assert _data_command(["check", parquet, "--format", "verl", "--data-root", str(tmp_path), "--videos"]) == 1
    assert json.loads(capsys.readouterr().out)["videos"]["by_reason"] == {"missing": 2}
    # Without --videos nothing is decoded, but a missing video still fails the row.
    assert _data_command(["check", parquet, "--format", "verl", "--data-root", str(tmp_path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["videos_ok"] == 0 and report["videos"]["by_reason"] == {"missing": 2} and not report["videos_decoded"]
    # The wrong format: every row fails, and the report says what to try.
    assert _data_command(["check", os.path.join(out, "sft_train.jsonl"), "--format", "seeker", "--data-root", out]) == 1
    captured = capsys.readouterr()
    assert "every row failed as --format seeker" in json.loads(captured.out)["hint"] and "known:" in captured.err


def test_palette_order_gives_each_colour_one_letter():
    cfg = SynthConfig(seed=5, n_train_videos=12, n_eval_videos=0, colours=["red", "green", "blue", "yellow"],
                      option_order="palette", data_types=["single_clue_tool", "single_clue_no_tool"])
    cfg.validate()
    seen = 0
    for plan in iter_plans(cfg, "train"):
        for q in plan.questions:
            assert q.options == ["red", "green", "blue", "yellow"]
            assert q.options[q.answer_index] == q.clues[0].colour
            assert all(e.colour in cfg.colours for e in plan.events)
            seen += 1
    assert seen >= 12


@pytest.mark.parametrize("bad", [dict(colours=["red", "red", "blue", "green"]), dict(colours=["red", "pink", "blue", "green"]),
                                 dict(colours=["red", "blue", "green"]), dict(option_order="sorted"), dict(regions=["middle"])])
def test_bad_palette_knobs_are_named(bad):
    with pytest.raises(ValueError, match="colours|option_order|regions"):
        SynthConfig(**bad).validate()
