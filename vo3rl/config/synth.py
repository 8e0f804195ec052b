"""Knobs of the synthetic long-video clue dataset (plain fields, so it can live in an OmegaConf recipe)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from vo3rl.config.names import CROP_STRATEGIES, DATA_TYPES, PROTOCOLS

CLUE_DATA_TYPES: tuple[str, ...] = tuple(t for t in DATA_TYPES if t != "temporal_grounding")
QUESTION_STYLES = ("time", "scene", "look", "marked", "signed")
EVENT_SHAPES = ("box", "disc")
SFT_PROTOCOLS = PROTOCOLS
OPTION_ORDERS = ("shuffled", "palette")
# Bright evidence colours, RGB; far from each other and from the dull scene backgrounds.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30), "green": (30, 190, 40), "blue": (40, 80, 240), "yellow": (240, 225, 40),
    "magenta": (225, 40, 215), "cyan": (40, 215, 225), "white": (245, 245, 245), "orange": (250, 140, 20),
}
# Region -> (normalised box, axis). Regions on one axis are disjoint; a scene uses one axis.
REGIONS: dict[str, tuple[tuple[float, float, float, float], str]] = {
    "left half": ((0.0, 0.0, 0.5, 1.0), "vertical"), "right half": ((0.5, 0.0, 1.0, 1.0), "vertical"),
    "top half": ((0.0, 0.0, 1.0, 0.5), "horizontal"), "bottom half": ((0.0, 0.5, 1.0, 1.0), "horizontal"),
    "whole screen": ((0.0, 0.0, 1.0, 1.0), "whole"),
}


@dataclass
class SynthConfig:
    """What the synthesizer makes. Times in seconds, sizes in pixels.

    A video is a run of `scene_s`-long scenes, each on its own dull background colour. Events are
    bright colour fills of a screen region (a half, or the whole screen; `event_size` shrinks the
    fill about the region's centre, `event_shape` makes it a box or a disc). A question asks which
    colour filled a region during one scene (single clue) or during several (multi clue); the
    question names the scene by its time span ("time" style), its background ("scene" style) or its
    look ("look" style: every scene shows its own whole-frame pattern, vo3rl/data/synth_looks.py, so
    the question names what the global view shows and the model must find the scene's time itself) or
    its mark ("marked" style: the asked scene alone has a maroon background, and every scene k shows
    the clock look CLOCK_LOOKS[k], so the overview tells which scene is marked and the look tells its
    time; one question per video) or its sign ("signed" style: every scene is plain but the asked one,
    which shows the pattern SIGN_LOOKS[k] of its place k; one question per video).

    Evidence needing the tool lasts `brief_event_s` and is placed on frames the global view does not
    sample but a crop of its scene does; evidence for no-tool questions lasts `long_event_s` and is
    on at least one global-view frame. Both are checked with the project's own sampler arithmetic,
    so `global_fps` / `global_max_frames` must match the global view the recipe uses, and
    `crop_strategy` the crop its trajectories call. In "look" style a long event also leaves at least
    one global-view frame of its scene uncovered, so the scene's look stays findable.

    `recovery_fraction` of the Video-o3 chats of tool questions (each drawn on its own, from the seed
    and the sample id) open with a call the crop tool refuses, flagged not trained, then the tool's
    error and the corrected call (vo3rl/data/synth_text.py); 0 leaves every chat as it was.
    """

    seed: int = 0
    n_train_videos: int = 64
    n_eval_videos: int = 16
    questions_per_video: int = 1
    duration_s: float = 32.0
    duration_jitter_s: float = 0.0  # each video's length is duration_s +- this (uniform, whole scenes)
    fps: int = 4
    width: int = 112
    height: int = 112
    scene_s: float = 4.0
    brief_event_s: float = 1.0
    long_event_s: float = 2.5
    event_size: float = 1.0  # fraction of the region's side the fill covers
    event_shape: str = "box"
    n_distractors: int = 2  # per question
    n_options: int = 4
    colours: list[str] = field(default_factory=lambda: list(COLOURS))  # the evidence palette, a subset of COLOURS
    regions: list[str] = field(default_factory=lambda: list(REGIONS))  # where evidence may appear
    option_order: str = "shuffled"  # or "palette": options sorted by palette place (a learnable letter for tiny models)
    multi_clues: int = 2
    data_types: list[str] = field(default_factory=lambda: list(CLUE_DATA_TYPES))
    include_grounding: bool = False  # add temporal-grounding questions to the mix
    question_style: str = "time"
    global_fps: float = 2.0
    global_max_frames: int = 16
    crop_strategy: str = "fine"
    open_o3_frames: int = 16
    sft_protocols: list[str] = field(default_factory=lambda: list(SFT_PROTOCOLS))
    crf: int = 18  # x264 quality; flat colours survive compression at any sane value
    paper_formats: bool = False  # also write the set in the papers' formats (vo3rl.sft.paper_files)
    recovery_fraction: float = 0.0  # share of tool chats with a refused call first, in [0, 1]

    def validate(self) -> None:
        """Raise ValueError naming the knob that cannot work."""
        checks = [
            (self.n_train_videos >= 0 and self.n_eval_videos >= 0, "video counts must be >= 0"),
            (self.questions_per_video >= 1, "questions_per_video must be >= 1"),
            (self.fps >= 1, "fps must be >= 1"),
            (self.width >= 28 and self.height >= 28 and self.width % 2 == 0 and self.height % 2 == 0,
             "width and height must be even and >= 28"),
            (0 < self.event_size <= 1, "event_size must be in (0, 1]"),
            (self.event_shape in EVENT_SHAPES, f"event_shape must be one of {EVENT_SHAPES}"),
            (2 <= self.n_options <= 8, "n_options must be in [2, 8]"),
            (len(set(self.colours)) == len(self.colours) and set(self.colours) <= set(COLOURS),
             f"colours must be distinct names from {tuple(COLOURS)}"),
            (len(self.colours) >= max(self.n_options, self.multi_clues + 1),
             "colours must hold at least max(n_options, multi_clues + 1) names"),
            (bool(self.regions) and len(set(self.regions)) == len(self.regions) and set(self.regions) <= set(REGIONS),
             f"regions must be distinct names from {tuple(REGIONS)}"),
            (self.option_order in OPTION_ORDERS, f"option_order must be one of {OPTION_ORDERS}"),
            (self.multi_clues >= 2, "multi_clues must be >= 2"),
            (self.n_distractors >= 0, "n_distractors must be >= 0"),
            (self.question_style in QUESTION_STYLES, f"question_style must be one of {QUESTION_STYLES}"),
            (self.crop_strategy in CROP_STRATEGIES, f"crop_strategy must be one of {CROP_STRATEGIES}"),
            (all(t in CLUE_DATA_TYPES for t in self.data_types) and (self.data_types or self.include_grounding),
             f"data_types must be a non-empty subset of {CLUE_DATA_TYPES}"),
            (all(p in SFT_PROTOCOLS for p in self.sft_protocols), f"sft_protocols must be a subset of {SFT_PROTOCOLS}"),
            (self.global_fps > 0 and self.global_max_frames >= 2, "global_fps > 0 and global_max_frames >= 2"),
            (self.open_o3_frames >= 2, "open_o3_frames must be >= 2"),
            (0 < self.brief_event_s < self.long_event_s <= self.scene_s, "need 0 < brief_event_s < long_event_s <= scene_s"),
            (0 <= self.duration_jitter_s < self.duration_s, "need 0 <= duration_jitter_s < duration_s"),
            (0.0 <= self.recovery_fraction <= 1.0, "recovery_fraction must be in [0, 1]"),
            # The papers' chat formats have no per-turn loss flag: the refused call would be trained there.
            (not (self.paper_formats and self.recovery_fraction > 0),
             "paper_formats cannot carry recovery chats (the papers' formats have no not-trained flag);"
             " set recovery_fraction=0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SynthConfig: {message}")
        shortest = self.duration_s - self.duration_jitter_s
        if math.floor(shortest / self.scene_s) < self.multi_clues + 1:
            raise ValueError(
                f"SynthConfig: a {shortest:g} s video holds {math.floor(shortest / self.scene_s)} scenes of {self.scene_s:g} s;"
                f" multi-clue questions need at least multi_clues + 1 = {self.multi_clues + 1}"
            )
        spacing = shortest / min(self.global_max_frames, max(2, round(shortest * self.global_fps)))
        if self.brief_event_s >= spacing - 1.0 / self.fps:
            raise ValueError(
                f"SynthConfig: brief_event_s={self.brief_event_s:g} s cannot hide between global-view frames"
                f" {spacing:.2f} s apart at {self.fps} fps; shorten it or lower global_max_frames"
            )
        # A long event must cover one of its scene's global-view frames and miss another; with the
        # frames at bin centres `spacing` apart that needs at least half a spacing of the scene free.
        if self.question_style in ("marked", "signed") and self.questions_per_video != 1:
            raise ValueError(f"SynthConfig: question_style='{self.question_style}' marks the asked scene, so it needs "
                             "questions_per_video = 1")
        if self.question_style in ("look", "marked", "signed") and self.long_event_s > self.scene_s - spacing / 2:
            raise ValueError(
                f"SynthConfig: question_style='{self.question_style}' needs long_event_s <= scene_s - {spacing / 2:.2f} s"
                f" (global-view frames {spacing:.2f} s apart) so a long event leaves its scene's look in view"
            )
