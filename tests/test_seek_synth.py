"""The synthesizer's "look" question style (a task that needs seeking) and the guard that every older
setting still writes the same data. Visibility is checked on the decoded videos, at the global view the
project's own sampler gives."""
from __future__ import annotations

import filecmp
import hashlib
import json
import os
import re

import numpy as np
import pytest

from vo3rl.config.synth import COLOURS, SynthConfig
from vo3rl.data.readers import read_seeker, read_sft
from vo3rl.data.schema import DataType
from vo3rl.data.synth import generate, iter_plans
from vo3rl.data.synth_looks import LOOK_RGB, LOOKS, look_mask
from vo3rl.data.synth_plan import BACKGROUNDS, TOOL_TYPES, VideoPlan
from vo3rl.data.synth_text import event_interval
from vo3rl.data.synth_video import render_frames
from vo3rl.video.budgets import crop_spec, preset
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import Clip, VideoRef

# The demo recipe's knobs (recipes/tiny_cpu/base.yaml data.synth, 2026-12-03), fewer videos; "look" style
# with a long event short enough to leave part of its scene in view, and the two-clue types.
DEMO = dict(colours=["red", "green", "blue", "yellow"], option_order="palette", brief_event_s=1.5, long_event_s=4.0,
            n_distractors=0, regions=["whole screen"],
            data_types=["single_clue_tool", "single_clue_tool", "single_clue_no_tool"])
LOOK = dict(DEMO, seed=7, n_train_videos=8, n_eval_videos=2, long_event_s=3.0, n_distractors=1, question_style="look",
            data_types=["single_clue_tool", "single_clue_no_tool", "multi_clue_tool", "multi_clue_no_tool"])


@pytest.fixture(scope="module")
def looked(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("look") / "a")
    cfg = SynthConfig(**LOOK)
    generate(cfg, out)
    return cfg, out


def _plans(cfg: SynthConfig) -> list[VideoPlan]:
    return [p for split in ("train", "eval") for p in iter_plans(cfg, split)]


def _global_view(cfg: SynthConfig, out: str, plan: VideoPlan, cache: DecodeCache) -> Clip:
    # The demo's global preset: its frame count and rate, no token floor, 16 tokens per 2-frame patch.
    spec = preset("global", fps=cfg.global_fps, max_frames=cfg.global_max_frames, min_tokens=0, max_tokens_per_patch=16)
    return sample_clip(VideoRef(os.path.join(out, "videos", f"{plan.name}.mp4")), spec, cache)


def _shows_colour(frame: np.ndarray, colour: str) -> bool:
    """The whole frame (4 px in from each edge) is the evidence colour, within compression's error."""
    mean = frame[4:-4, 4:-4].reshape(-1, 3).mean(axis=0)
    return bool(np.abs(mean - np.array(COLOURS[colour])).max() < 30)


def _look_of(frame: np.ndarray, background: str) -> str:
    """The look whose rendering on `background` is nearest the frame (mean absolute error per pixel)."""
    h, w = frame.shape[:2]
    errors = {}
    for look in LOOKS:
        expected = np.where(look_mask(look, h, w)[..., None], np.array(LOOK_RGB), np.array(BACKGROUNDS[background]))
        errors[look] = float(np.abs(frame.astype(np.float64) - expected).mean())
    return min(errors, key=errors.get)


def _in_scene(clip: Clip, plan: VideoPlan, scene: int) -> list[np.ndarray]:
    s = plan.scenes[scene]
    return [f for f, t in zip(clip.frames, clip.timestamps_s) if s.first_frame / plan.fps <= t < s.end_frame / plan.fps]


def assert_regenerates_the_same_bytes(knobs: dict, out: str, again: str) -> None:
    """`generate(SynthConfig(**knobs), again)` writes byte-identical rows, manifest and videos to `out`'s."""
    generate(SynthConfig(**knobs), again)
    for name in ("rl_train.jsonl", "sft_train.jsonl", "eval.jsonl", "manifest.json", *(f"videos/{v}" for v in os.listdir(f"{out}/videos"))):
        assert filecmp.cmp(os.path.join(out, name), os.path.join(again, name), shallow=False), name


def test_same_seed_same_rows_and_videos(looked, tmp_path):
    cfg, out = looked
    assert_regenerates_the_same_bytes(LOOK, out, str(tmp_path / "b"))
    other = str(tmp_path / "c")
    generate(SynthConfig(**dict(LOOK, seed=8)), other)
    assert not filecmp.cmp(os.path.join(out, "rl_train.jsonl"), os.path.join(other, "rl_train.jsonl"), shallow=False)


def test_questions_name_a_look_not_a_time_and_rows_carry_the_clues(looked):
    cfg, out = looked
    samples = {s.id: s for s in read_seeker(os.path.join(out, "rl_train.jsonl"), data_root=out)}
    samples.update({s.id: s for s in read_seeker(os.path.join(out, "eval.jsonl"), data_root=out)})
    seen_types = set()
    for plan in _plans(cfg):
        assert len({s.look for s in plan.scenes}) == len(plan.scenes) and all(s.look in LOOKS for s in plan.scenes)
        assert all(s.first_frame % (4 * plan.fps) == 0 for s in plan.scenes)  # scene boundaries on whole 4 s
        for qi, q in enumerate(plan.questions):
            sample = samples[f"{plan.name}_q{qi}"]
            assert not re.search(r"\d", sample.question), sample.question
            assert all(f"the {plan.scenes[e.scene].look} scene" in sample.question for e in q.clues)
            assert sample.data_type is q.data_type
            assert sample.clues == [event_interval(plan, e) for e in q.clues]
            seen_types.add(sample.data_type)
    assert seen_types == {DataType(t) for t in LOOK["data_types"]}


def test_no_global_view_frame_shows_a_brief_flash_and_a_crop_does(looked):
    cfg, out = looked
    cache = DecodeCache()
    brief_frames = round(cfg.brief_event_s * cfg.fps)
    checked = 0
    for plan in _plans(cfg):
        overview = _global_view(cfg, out, plan, cache)
        ref = VideoRef(os.path.join(out, "videos", f"{plan.name}.mp4"))
        for e in plan.events:
            if e.n_frames != brief_frames:
                continue
            assert not any(_shows_colour(f, e.colour) for f in overview.frames), (plan.name, e)
            scene = plan.scenes[e.scene]
            crop = sample_clip(ref, crop_spec(cfg.crop_strategy, scene.first_frame / plan.fps, scene.end_frame / plan.fps), cache)
            assert any(_shows_colour(f, e.colour) for f in crop.frames), (plan.name, e)
            checked += 1
    assert checked >= 8


def test_the_cue_scene_look_is_visible_in_the_global_view(looked):
    cfg, out = looked
    cache = DecodeCache()
    counts = {"tool": 0, "no_tool": 0}
    for plan in _plans(cfg):
        overview = _global_view(cfg, out, plan, cache)
        for q in plan.questions:
            for e in q.clues:
                scene = plan.scenes[e.scene]
                frames = _in_scene(overview, plan, e.scene)
                looks = [_look_of(f, scene.background) for f in frames]
                if q.data_type in TOOL_TYPES:
                    assert frames and looks == [scene.look] * len(frames), (plan.name, scene, looks)
                    counts["tool"] += 1
                else:  # the long event shows on one global-view frame of the scene and leaves another showing the look
                    assert scene.look in looks and any(_shows_colour(f, e.colour) for f in frames), (plan.name, scene, looks)
                    counts["no_tool"] += 1
    assert counts["tool"] >= 4 and counts["no_tool"] >= 4


def test_sft_chats_crop_the_cue_scene_after_placing_it(looked):
    cfg, out = looked
    grounding = re.compile(r"<grounding>(\{.*\})</grounding>", re.S)
    chats = [ex for ex in read_sft(os.path.join(out, "sft_train.jsonl"), "chat", data_root=out) if ex.protocol == "video_o3"]
    assert chats
    for ex in chats:
        s = ex.sample
        assistants = [t.text for t in ex.turns if t.role == "assistant"]
        calls = [json.loads(m.group(1))["temporal_segment"] for t in assistants if (m := grounding.search(t))]
        needs_tool = s.data_type in TOOL_TYPES
        assert len(calls) == (len(s.clues) if needs_tool else 0)
        # Every clue's scene is placed in time in the reasoning ("The striped scene runs from 8 s to 12 s.").
        spans = [(4.0 * (start // 4.0), 4.0 * (start // 4.0) + 4.0) for start, _ in s.clues]
        for start, end in spans:
            assert re.search(rf"scene runs from {start:g} s to {end:g} s\.", " ".join(assistants)), assistants
        if needs_tool:
            assert [tuple(c) for c in calls] == spans
        assert assistants[-1].endswith(f"<answer>{s.answer}</answer>\n")


@pytest.mark.parametrize("bad", [dict(long_event_s=4.0), dict(duration_s=48.0)])
def test_look_knobs_that_cannot_work_are_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="look"):
        generate(SynthConfig(**dict(LOOK, **bad)), str(tmp_path))


def _digest(cfg: SynthConfig, out: str) -> dict[str, str]:
    manifest = generate(cfg, out)
    found = {name: hashlib.sha256(open(os.path.join(out, name), "rb").read()).hexdigest()[:16]
             for name in ("rl_train.jsonl", "sft_train.jsonl", "eval.jsonl")}
    found["counts"] = hashlib.sha256(json.dumps(manifest["counts"], sort_keys=True).encode()).hexdigest()[:16]
    frames = hashlib.sha256()
    for plan in _plans(cfg):
        frames.update(render_frames(plan, cfg.event_shape).tobytes())
    found["frames"] = frames.hexdigest()[:16]
    return found


# Recorded before the "look" style existed: the demo's knobs, the synthesizer's defaults, and "scene" style
# with grounding; the rows, the chats, the manifest's counts and every rendered frame must stay the same.
GOLDEN = [
    (dict(DEMO, seed=0, n_train_videos=8, n_eval_videos=4),
     {"rl_train.jsonl": "24b5351008a9519e", "sft_train.jsonl": "2e0e1d3128878f33", "eval.jsonl": "55a6f8b8f28ed86d",
      "counts": "423ec0346e4c8315", "frames": "7472b0ee0a3e35fc"}),
    (dict(seed=5, n_train_videos=6, n_eval_videos=2),
     {"rl_train.jsonl": "669c1affe01f54ad", "sft_train.jsonl": "47ccb794a9913c84", "eval.jsonl": "972e83dd4ee57931",
      "counts": "2ae38211d63065a7", "frames": "dee7fcfe632dabc3"}),
    (dict(seed=2, n_train_videos=6, n_eval_videos=2, include_grounding=True, question_style="scene", duration_s=40.0),
     {"rl_train.jsonl": "a135c6eceb1f5268", "sft_train.jsonl": "cf4ad6d67a3127ee", "eval.jsonl": "de884814939c26b9",
      "counts": "f790960d7d5ba734", "frames": "bfdf2d5fd4cd95bc"}),
]


@pytest.mark.parametrize("knobs, expected", GOLDEN, ids=["demo", "defaults", "scene"])
def test_older_settings_write_the_same_data(tmp_path, knobs, expected):
    found = _digest(SynthConfig(**knobs), str(tmp_path))
    assert {k: found[k] for k in expected} == expected
