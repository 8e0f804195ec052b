"""The synthesizer's "marked" question style: the asked scene alone has the mark background, every scene
k shows clock look k, and the brief flash is only in a crop. Checked on the decoded videos at the global
view the project's own sampler gives."""
from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from test_seek_synth import DEMO, assert_regenerates_the_same_bytes, _global_view, _in_scene, _plans, _shows_colour
from vo3rl.config.synth import SynthConfig
from vo3rl.data.readers import read_seeker, read_sft
from vo3rl.data.schema import DataType
from vo3rl.data.synth import generate
from vo3rl.data.synth_looks import CLOCK_LOOKS, LOOK_BACKGROUND, LOOK_RGB, MARK_BACKGROUND, look_mask
from vo3rl.data.synth_plan import BACKGROUNDS, TOOL_TYPES
from vo3rl.data.synth_text import event_interval
from vo3rl.video.budgets import crop_spec
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import VideoRef

MARKED = dict(DEMO, seed=3, n_train_videos=10, n_eval_videos=2, long_event_s=3.0, question_style="marked",
              recovery_fraction=0.5,
              data_types=["single_clue_tool", "single_clue_no_tool", "multi_clue_tool", "multi_clue_no_tool"])


@pytest.fixture(scope="module")
def marked(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("marked") / "a")
    cfg = SynthConfig(**MARKED)
    generate(cfg, out)
    return cfg, out


def _nearest(frame: np.ndarray) -> tuple[str, str]:
    """The (clock look, background) whose rendering is nearest the frame (mean absolute error)."""
    h, w = frame.shape[:2]
    errors = {}
    for look in CLOCK_LOOKS:
        for background in (LOOK_BACKGROUND, MARK_BACKGROUND):
            expected = np.where(look_mask(look, h, w)[..., None], np.array(LOOK_RGB), np.array(BACKGROUNDS[background]))
            errors[look, background] = float(np.abs(frame.astype(np.float64) - expected).mean())
    return min(errors, key=errors.get)


def test_clock_codes_are_distinct_in_every_vision_token_and_leave_the_background_in_view():
    tokens = set()
    for look in CLOCK_LOOKS:
        mask = look_mask(look, 112, 112)
        cells = mask[::14, ::14]  # one value per 14-px cell
        codes = {tuple(cells[r : r + 2, c : c + 2].ravel()) for r in range(0, 8, 2) for c in range(0, 8, 2)}
        assert len(codes) == 1, look  # every 28-px token sees the same 2 x 2 code
        code = codes.pop()
        assert sum(code) <= 2, look  # at least half of each token shows the background (the mark)
        tokens.add(code)
    assert len(tokens) == len(CLOCK_LOOKS)


def test_same_seed_same_data(marked, tmp_path):
    cfg, out = marked
    assert_regenerates_the_same_bytes(MARKED, out, str(tmp_path / "b"))


def test_only_the_asked_scenes_are_marked_and_the_clock_is_fixed(marked):
    cfg, out = marked
    samples = {s.id: s for name in ("rl_train.jsonl", "eval.jsonl")
               for s in read_seeker(os.path.join(out, name), data_root=out)}
    types = set()
    for plan in _plans(cfg):
        assert [s.look for s in plan.scenes] == list(CLOCK_LOOKS[: len(plan.scenes)])
        for q in plan.questions:
            asked = {e.scene for e in q.clues}
            assert {s.index for s in plan.scenes if s.background == MARK_BACKGROUND} == asked
            sample = samples[f"{plan.name}_q0"]
            assert not re.search(r"\d", sample.question.replace(f"{len(asked)} {MARK_BACKGROUND}", "")), sample.question
            assert MARK_BACKGROUND in sample.question
            assert sample.clues == [event_interval(plan, e) for e in q.clues]
            types.add(sample.data_type)
    assert types == {DataType(t) for t in MARKED["data_types"]}


def test_the_marked_scene_is_visible_in_the_global_view_and_only_a_crop_shows_a_flash(marked):
    cfg, out = marked
    cache = DecodeCache()
    counts = {"tool": 0, "no_tool": 0}
    for plan in _plans(cfg):
        overview = _global_view(cfg, out, plan, cache)
        ref = VideoRef(os.path.join(out, "videos", f"{plan.name}.mp4"))
        for q in plan.questions:
            for e in q.clues:
                scene = plan.scenes[e.scene]
                frames = _in_scene(overview, plan, e.scene)
                seen = [_nearest(f) for f in frames if not _shows_colour(f, e.colour)]
                assert (scene.look, MARK_BACKGROUND) in seen, (plan.name, scene, seen)
                if q.data_type in TOOL_TYPES:
                    assert not any(_shows_colour(f, e.colour) for f in overview.frames), (plan.name, e)
                    crop = sample_clip(ref, crop_spec(cfg.crop_strategy, scene.first_frame / plan.fps,
                                                      scene.end_frame / plan.fps), cache)
                    assert any(_shows_colour(f, e.colour) for f in crop.frames), (plan.name, e)
                    counts["tool"] += 1
                else:
                    assert any(_shows_colour(f, e.colour) for f in frames), (plan.name, e)
                    counts["no_tool"] += 1
    assert counts["tool"] >= 4 and counts["no_tool"] >= 4


def test_chats_name_the_clock_look_then_crop_its_scene(marked):
    cfg, out = marked
    grounding = re.compile(r"<grounding>(\{.*\})</grounding>", re.S)
    chats = [ex for ex in read_sft(os.path.join(out, "sft_train.jsonl"), "chat", data_root=out) if ex.protocol == "video_o3"]
    assert chats
    for ex in chats:
        s = ex.sample
        assistants = [t for t in ex.turns if t.role == "assistant"]
        trained = [t.text for t in assistants if t.trained]
        calls = [json.loads(m.group(1))["temporal_segment"] for t in trained if (m := grounding.search(t))]
        spans = [(4.0 * (start // 4.0), 4.0 * (start // 4.0) + 4.0) for start, _ in s.clues]
        for start, end in spans:
            look = CLOCK_LOOKS[int(start // 4)]
            assert re.search(rf"The {MARK_BACKGROUND} scene is the {look} one, from {start:g} s to {end:g} s\.",
                             " ".join(t.text for t in assistants)), assistants  # a recovery chat places it in the refused turn
        if s.data_type in TOOL_TYPES:
            assert [tuple(c) for c in calls] == spans
        else:
            assert not calls


@pytest.mark.parametrize("bad, words", [(dict(questions_per_video=2), "questions_per_video"),
                                        (dict(long_event_s=4.0), "marked"), (dict(duration_s=48.0, global_max_frames=24), "clock")])
def test_marked_knobs_that_cannot_work_are_refused(tmp_path, bad, words):
    with pytest.raises(ValueError, match=words):
        generate(SynthConfig(**dict(MARKED, **bad)), str(tmp_path))
