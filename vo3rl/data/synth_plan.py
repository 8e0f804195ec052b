"""Planning synthetic videos: scenes, evidence events and the questions about them. Pure: no I/O.

Invariants that make every answer unique and every data type honest:
- A scene's regions are disjoint: its events fill either the left/right halves, the top/bottom
  halves, or the whole screen, and each (scene, region) holds at most one event. So "the colour of
  region R during scene S" has one answer.
- A temporal-grounding event's (colour, region) appears nowhere else in its video.
- A brief event covers no frame of the global view and at least one frame of the crop of its scene;
  a long event covers at least one global-view frame. Both use the sampler's own frame selection.
- In "look" style every scene of a video has its own look (vo3rl/data/synth_looks.py), and a long
  event leaves at least one of its scene's global-view frames uncovered, so the overview always shows
  the look of the scene a question names. "marked" style does the same for the marked scene(s): the
  scenes a question asks about get the maroon background, every scene k shows the clock look k; and
  "signed" style: every scene plain, the asked scene k alone showing the sign SIGN_LOOKS[k].
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import permutations

import numpy as np

from vo3rl.config.synth import REGIONS, SynthConfig
from vo3rl.data.schema import DataType
from vo3rl.data.synth_looks import CLOCK_LOOKS, LOOK_BACKGROUND, LOOKS, MARK_BACKGROUND, SIGN_LOOKS
from vo3rl.video.budgets import crop_spec
from vo3rl.video.timeline import select_frames
from vo3rl.video.types import SamplingSpec

# Dull scene backgrounds, RGB; far from the evidence COLOURS so compression cannot confuse them.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "navy": (20, 24, 72), "olive": (62, 62, 16), "maroon": (74, 16, 22), "teal": (14, 62, 62), "purple": (52, 22, 66),
    "brown": (72, 46, 18), "slate": (50, 56, 64), "forest": (16, 56, 28), "plum": (62, 30, 46), "black": (8, 8, 8),
}
TOOL_TYPES = (DataType.SINGLE_CLUE_TOOL, DataType.MULTI_CLUE_TOOL)
MULTI_TYPES = (DataType.MULTI_CLUE_TOOL, DataType.MULTI_CLUE_NO_TOOL)


@dataclass(frozen=True)
class Scene:
    index: int
    first_frame: int
    end_frame: int  # exclusive
    background: str
    look: str = ""  # a name from synth_looks.LOOKS in "look" style, else "" (no pattern drawn)


@dataclass(frozen=True)
class Event:
    """A colour fill of `region` over frames [first_frame, first_frame + n_frames), box in pixels
    (x1, y1, x2, y2; x2, y2 exclusive)."""

    colour: str
    region: str
    scene: int
    first_frame: int
    n_frames: int
    box_px: tuple[int, int, int, int]


@dataclass
class QuestionPlan:
    data_type: DataType
    region: str
    clues: list[Event]  # in time order
    options: list[str] = field(default_factory=list)  # option texts, unlettered
    answer_index: int = -1  # -1 for temporal grounding


@dataclass
class VideoPlan:
    name: str
    n_frames: int
    fps: int
    width: int
    height: int
    scenes: list[Scene]
    events: list[Event] = field(default_factory=list)
    questions: list[QuestionPlan] = field(default_factory=list)
    dropped_distractors: int = 0
    dropped_questions: int = 0

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps


def event_box(region: str, size: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The region's box scaled by `size` about its centre, in whole pixels."""
    (x1, y1, x2, y2), _ = REGIONS[region]
    cx, cy, half_w, half_h = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * size / 2, (y2 - y1) * size / 2
    return (round((cx - half_w) * width), round((cy - half_h) * height), round((cx + half_w) * width), round((cy + half_h) * height))


class _Placer:
    """One video's bookkeeping: which frames each view samples and what is already used."""

    def __init__(self, plan: VideoPlan, cfg: SynthConfig, rng: np.random.Generator):
        self.plan, self.cfg, self.rng = plan, cfg, rng
        times = np.arange(plan.n_frames, dtype=np.float64) / plan.fps
        spec = SamplingSpec(fps=cfg.global_fps, max_frames=cfg.global_max_frames)
        self.global_frames = set(select_frames(times, plan.duration_s, spec).tolist())
        self.crop_frames = {
            s.index: set(select_frames(times, plan.duration_s, crop_spec(cfg.crop_strategy, s.first_frame / plan.fps, s.end_frame / plan.fps)).tolist())
            for s in plan.scenes
        }
        # Each scene's global-view frames: a long event must leave one showing the scene's look.
        self.scene_global = {s.index: {f for f in self.global_frames if s.first_frame <= f < s.end_frame} for s in plan.scenes}
        self.axis: dict[int, str] = {}
        self.used: set[tuple[int, str]] = set()
        self.unique_pairs: set[tuple[str, str]] = set()  # (colour, region) of grounding events
        self.pairs_seen: set[tuple[str, str]] = set()

    def region_free(self, scene: int, region: str) -> bool:
        axis = REGIONS[region][1]
        return self.axis.get(scene, axis) == axis and (scene, region) not in self.used

    def place(self, scene_index: int, region: str, colour: str, brief: bool) -> Event | None:
        if not self.region_free(scene_index, region) or (colour, region) in self.unique_pairs:
            return None
        scene = self.plan.scenes[scene_index]
        seconds = self.cfg.brief_event_s if brief else self.cfg.long_event_s
        length = max(1, round(seconds * self.plan.fps))
        starts = []
        for first in range(scene.first_frame, scene.end_frame - length + 1):
            frames = set(range(first, first + length))
            if brief:
                ok = not frames & self.global_frames and frames & self.crop_frames[scene_index]
            else:
                ok = bool(frames & self.global_frames) and (not scene.look or bool(self.scene_global[scene_index] - frames))
            if ok:
                starts.append(first)
        if not starts:
            return None
        first = int(self.rng.choice(starts))
        box = event_box(region, self.cfg.event_size, self.plan.width, self.plan.height)
        event = Event(colour, region, scene_index, first, length, box)
        self.axis[scene_index] = REGIONS[region][1]
        self.used.add((scene_index, region))
        self.pairs_seen.add((colour, region))
        self.plan.events.append(event)
        return event


def _scenes(n_frames: int, fps: int, cfg: SynthConfig, rng: np.random.Generator) -> list[Scene]:
    per_scene = max(1, round(cfg.scene_s * fps))
    count = n_frames // per_scene
    bounds = [(i * per_scene, (i + 1) * per_scene if i < count - 1 else n_frames) for i in range(count)]
    if cfg.question_style == "look":
        if count > len(LOOKS):
            raise ValueError(f"{count} scenes but only {len(LOOKS)} distinct looks for question_style='look'")
        looks = rng.permutation(len(LOOKS))
        return [Scene(i, first, end, LOOK_BACKGROUND, LOOKS[looks[i]]) for i, (first, end) in enumerate(bounds)]
    if cfg.question_style == "marked":
        if count > len(CLOCK_LOOKS):
            raise ValueError(f"{count} scenes but the clock has {len(CLOCK_LOOKS)} looks for question_style='marked'")
        return [Scene(i, first, end, LOOK_BACKGROUND, CLOCK_LOOKS[i]) for i, (first, end) in enumerate(bounds)]
    if cfg.question_style == "signed":
        if count > len(SIGN_LOOKS):
            raise ValueError(f"{count} scenes but there are {len(SIGN_LOOKS)} signs for question_style='signed'")
        return [Scene(i, first, end, LOOK_BACKGROUND, "plain") for i, (first, end) in enumerate(bounds)]
    names = list(BACKGROUNDS)
    order = rng.permutation(len(names))
    if count > len(names) and cfg.question_style == "scene":
        raise ValueError(f"{count} scenes but only {len(names)} distinct backgrounds for question_style='scene'")
    # Adjacent scenes always differ; a long video in "time" style may reuse a background.
    return [Scene(i, first, end, names[order[i % len(names)]]) for i, (first, end) in enumerate(bounds)]


def _wrong_options(answer: tuple[str, ...], n: int, colours: list[str], rng: np.random.Generator) -> list[tuple[str, ...]]:
    pool: set[tuple[str, ...]] = set()
    if len(answer) > 1:
        pool.update(p for p in permutations(answer) if p != answer)
    for i in range(len(answer)):
        for c in colours:
            if c not in answer:
                pool.add(answer[:i] + (c,) + answer[i + 1 :])
    ordered = sorted(pool)
    picks = rng.choice(len(ordered), size=min(n, len(ordered)), replace=False)
    return [ordered[i] for i in sorted(picks)]


def _palette_order(texts: list[tuple[str, ...]], palette: list[str]) -> np.ndarray:
    """Options sorted by their colours' places in the palette: with as many palette colours as
    options, a single-clue question's letter then names one colour in every question."""
    return np.array(sorted(range(len(texts)), key=lambda i: [palette.index(c) for c in texts[i]]))


def _question(placer: _Placer, data_type: DataType) -> QuestionPlan | None:
    cfg, rng, plan = placer.cfg, placer.rng, placer.plan
    region = str(rng.choice(cfg.regions))
    k = cfg.multi_clues if data_type in MULTI_TYPES else 1
    free = [s.index for s in plan.scenes if placer.region_free(s.index, region)]
    if len(free) < k:
        return None
    scenes = sorted(int(s) for s in rng.choice(free, size=k, replace=False))
    brief = data_type in TOOL_TYPES
    if data_type is DataType.TEMPORAL_GROUNDING:
        choices = [c for c in cfg.colours if (c, region) not in placer.pairs_seen]
        colours = (str(rng.choice(choices)),) if choices else ()
    else:
        colours = tuple(str(c) for c in rng.choice(cfg.colours, size=k, replace=False))
    clues = [placer.place(s, region, c, brief) for s, c in zip(scenes, colours)]
    if len(clues) != k or any(e is None for e in clues):
        return None  # events placed before the failure stay as harmless extra events
    question = QuestionPlan(data_type, region, clues)
    if data_type is DataType.TEMPORAL_GROUNDING:
        placer.unique_pairs.add((colours[0], region))
        wrong_colours = [c for c in cfg.colours if c != colours[0]]
    else:
        wrong = _wrong_options(colours, cfg.n_options - 1, cfg.colours, rng)
        texts = [colours, *wrong]
        order = rng.permutation(len(texts)) if cfg.option_order == "shuffled" else _palette_order(texts, cfg.colours)
        question.options = [", then ".join(texts[i]) for i in order]
        question.answer_index = int(np.flatnonzero(order == 0)[0])
        wrong_colours = [c for option in wrong for c in option if c not in colours] or [c for c in cfg.colours if c not in colours]
    _distractors(placer, question, wrong_colours, brief)
    return question


def _distractors(placer: _Placer, question: QuestionPlan, colours: list[str], brief: bool) -> None:
    """Events that look like evidence: the same region in another scene, or the other half of a
    clue's scene; coloured like the wrong options so seeing a colour is not enough."""
    cfg, rng, plan = placer.cfg, placer.rng, placer.plan
    clue_scenes = {e.scene for e in question.clues}
    axis = REGIONS[question.region][1]
    siblings = [r for r in cfg.regions if REGIONS[r][1] == axis and r != question.region]
    for i in range(cfg.n_distractors):
        colour = colours[i % len(colours)]
        options = [(s.index, question.region) for s in plan.scenes if s.index not in clue_scenes]
        options += [(s, r) for s in clue_scenes for r in siblings]
        options = [(s, r) for s, r in options if placer.region_free(s, r)]
        placed = False
        for j in rng.permutation(len(options)):
            if placer.place(options[j][0], options[j][1], colour, brief) is not None:
                placed = True
                break
        plan.dropped_distractors += not placed


def plan_video(name: str, cfg: SynthConfig, rng: np.random.Generator, data_types: list[DataType]) -> VideoPlan:
    """A video with one question per entry of `data_types` (a question that cannot be placed is
    dropped and counted)."""
    seconds = cfg.duration_s + (rng.uniform(-cfg.duration_jitter_s, cfg.duration_jitter_s) if cfg.duration_jitter_s else 0.0)
    per_scene = max(1, round(cfg.scene_s * cfg.fps))
    n_frames = max(cfg.multi_clues + 1, int(seconds * cfg.fps) // per_scene) * per_scene
    plan = VideoPlan(name, n_frames, cfg.fps, cfg.width, cfg.height, _scenes(n_frames, cfg.fps, cfg, rng))
    placer = _Placer(plan, cfg, rng)
    for data_type in data_types:
        question = _question(placer, data_type)
        if question is None:
            plan.dropped_questions += 1
        else:
            plan.questions.append(question)
    if cfg.question_style == "marked":
        asked = {e.scene for q in plan.questions for e in q.clues}
        plan.scenes = [replace(s, background=MARK_BACKGROUND) if s.index in asked else s for s in plan.scenes]
    if cfg.question_style == "signed":
        asked = {e.scene for q in plan.questions for e in q.clues}
        plan.scenes = [replace(s, look=SIGN_LOOKS[s.index]) if s.index in asked else s for s in plan.scenes]
    return plan
