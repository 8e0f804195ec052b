"""The one sample schema every reader produces and every later stage consumes."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from vo3rl.video.types import VideoRef


class DataType(str, Enum):
    """Video-o3's data types; they select the row of the trajectory-reward bonus table."""

    SINGLE_CLUE_TOOL = "single_clue_tool"
    MULTI_CLUE_TOOL = "multi_clue_tool"
    SINGLE_CLUE_NO_TOOL = "single_clue_no_tool"
    MULTI_CLUE_NO_TOOL = "multi_clue_no_tool"
    TEMPORAL_GROUNDING = "temporal_grounding"


class Task(str, Enum):
    """What the answer is; selects the answer reward and the prompt template."""

    MCQ = "mcq"
    FREE_FORM = "free_form"
    TEMPORAL_GROUNDING = "temporal_grounding"
    TG_MCQ = "tg_mcq"
    SPATIAL_GROUNDING = "spatial_grounding"


Box = tuple[float, float, float, float]  # x1, y1, x2, y2, normalised to [0, 1] of the frame


@dataclass
class KeyFrame:
    """An annotated moment: its time (seconds) and the ground-truth boxes of named objects in it."""

    time_s: float
    boxes: dict[str, list[Box]] = field(default_factory=dict)


@dataclass
class Sample:
    """One question about one video, with everything the rewards need as ground truth.

    `answer` is the option letter for MCQ, the reference text for free-form, "[s, e]" seconds for
    temporal grounding, "X\\n[s, e]" for TG-MCQ, a normalised box "[x1, y1, x2, y2]" for spatial
    grounding. `clues` are the evidence intervals in seconds.
    """

    id: str
    question: str
    answer: str
    video: VideoRef
    task: Task = Task.MCQ
    data_type: DataType = DataType.SINGLE_CLUE_TOOL
    options: list[str] = field(default_factory=list)  # "A. …" strings, in order
    duration_s: float | None = None
    clues: list[tuple[float, float]] = field(default_factory=list)
    key_frames: list[KeyFrame] = field(default_factory=list)
    source: str = ""
    extra: dict = field(default_factory=dict)


class SampleError(Exception):
    """A dataset row that cannot become a Sample; names the row and the reason."""

    def __init__(self, sample_id: str, reason: str):
        super().__init__(f"sample {sample_id!r}: {reason}")
        self.sample_id = sample_id
        self.reason = reason
