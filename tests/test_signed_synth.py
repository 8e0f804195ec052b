"""The synthesizer's "signed" question style: every scene plain but the asked one, which shows the
sign of its place (SIGN_LOOKS[k]); the sign shows in the global view, the brief flash only in a crop.
Checked on the decoded videos at the global view the project's own sampler gives."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

from test_seek_synth import DEMO, assert_regenerates_the_same_bytes, _global_view, _in_scene, _plans, _shows_colour
from vo3rl.config.synth import SynthConfig
from vo3rl.data.readers import read_seeker, read_sft
from vo3rl.data.synth import generate
from vo3rl.data.synth_looks import LOOK_BACKGROUND, LOOK_RGB, SIGN_LOOKS, look_mask
from vo3rl.data.synth_plan import BACKGROUNDS, TOOL_TYPES
from vo3rl.video.cache import DecodeCache

SIGNED = dict(DEMO, seed=5, n_train_videos=8, n_eval_videos=2, long_event_s=3.0, question_style="signed",
              data_types=["single_clue_tool", "single_clue_no_tool", "multi_clue_tool"])


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("signed") / "a")
    cfg = SynthConfig(**SIGNED)
    generate(cfg, out)
    return cfg, out


def _nearest_look(frame: np.ndarray) -> str:
    h, w = frame.shape[:2]
    background = np.array(BACKGROUNDS[LOOK_BACKGROUND])
    errors = {look: float(np.abs(frame.astype(np.float64) - np.where(look_mask(look, h, w)[..., None],
                                                                        np.array(LOOK_RGB), background)).mean())
              for look in ("plain", *SIGN_LOOKS)}
    return min(errors, key=errors.get)


def test_same_seed_same_data(signed, tmp_path):
    cfg, out = signed
    assert_regenerates_the_same_bytes(SIGNED, out, str(tmp_path / "b"))


def test_only_the_asked_scenes_carry_their_sign_and_the_global_view_shows_it(signed):
    cfg, out = signed
    samples = {s.id: s for name in ("rl_train.jsonl", "eval.jsonl") for s in read_seeker(os.path.join(out, name), data_root=out)}
    counts, cache = {"tool": 0, "no_tool": 0}, DecodeCache()
    for plan in _plans(cfg):
        overview = _global_view(cfg, out, plan, cache)
        for q in plan.questions:
            asked = {e.scene for e in q.clues}
            assert [s.look for s in plan.scenes] == [SIGN_LOOKS[s.index] if s.index in asked else "plain" for s in plan.scenes]
            question = samples[f"{plan.name}_q0"].question
            assert "patterned" in question and not re.search(r"\d", question.replace(f"{len(asked)} patterned", ""))
            for e in q.clues:
                seen = [_nearest_look(f) for f in _in_scene(overview, plan, e.scene) if not _shows_colour(f, e.colour)]
                assert SIGN_LOOKS[e.scene] in seen, (plan.name, e.scene, seen)
                if q.data_type in TOOL_TYPES:
                    assert not any(_shows_colour(f, e.colour) for f in overview.frames), (plan.name, e)
                    counts["tool"] += 1
                else:
                    counts["no_tool"] += 1
            others = [_nearest_look(f) for i in range(len(plan.scenes)) if i not in asked for f in _in_scene(overview, plan, i)]
            assert set(others) <= {"plain"}, (plan.name, set(others))
    assert counts["tool"] >= 4 and counts["no_tool"] >= 2


def test_chats_name_the_sign_then_crop_its_scene(signed):
    cfg, out = signed
    chats = [ex for ex in read_sft(os.path.join(out, "sft_train.jsonl"), "chat", data_root=out) if ex.protocol == "video_o3"]
    assert chats
    for ex in chats:
        text = " ".join(t.text for t in ex.turns if t.role == "assistant")
        for start, _ in ex.sample.clues:
            scene = int(start // 4)
            assert f"The patterned scene is the {SIGN_LOOKS[scene]} one, from {4 * scene:g} s to {4 * scene + 4:g} s." in text


def test_signed_needs_one_question_per_video(tmp_path):
    with pytest.raises(ValueError, match="questions_per_video"):
        generate(SynthConfig(**dict(SIGNED, questions_per_video=2)), str(tmp_path))
