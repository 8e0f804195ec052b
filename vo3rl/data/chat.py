"""The project's SFT chat format, shared by the synthesizer, the readers of released chats and SFT.

An SFTExample is a Sample plus its turns. A user turn with `text=None` is rendered by the
protocol's templates (the first turn: question + global video; an observation after a
`<grounding>` call: the crop plus its sampling line, or, with no video, the error the tool gives
for a refused call), so SFT and RL produce identical prompts. Readers of released chats keep their
literal text instead.

An assistant turn with `trained=False` stays in the context but carries no loss (a recovery chat's
refused tool call: the model should read it, not learn to write it).

JSONL layout, one example per line:
    {"protocol": "video_o3" | "open_o3", "sample": <sample_json layout>,
     "turns": [{"role": "user" | "assistant", "text": str | null,
                "video": {"preset": str, "start_s": float | null, "end_s": float | null} | null,
                "trained": false}]}
`trained` is optional (default true) and written only when false, so chats without the flag keep
their bytes; `false` is refused on a user turn (user turns never carry loss).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator

from vo3rl.config.names import PROTOCOLS
from vo3rl.data.jsonl import convert_rows
from vo3rl.data.paths import resolve_video_path
from vo3rl.data.sample_json import sample_from_dict, sample_to_dict
from vo3rl.data.schema import Sample, SampleError
from vo3rl.data.skips import SkipLog
from vo3rl.video.budgets import PRESET_NAMES

ROLES: tuple[str, ...] = ("user", "assistant")


@dataclass
class VideoUse:
    """Which view of the sample's video a user turn shows: a sampling preset and, for crops, the
    window in seconds of the original timeline (None: the whole video)."""

    preset: str  # "global" | "coarse" | "medium" | "fine" | "open_o3"
    start_s: float | None = None
    end_s: float | None = None


@dataclass
class ChatTurn:
    role: str  # "user" | "assistant"
    text: str | None = None  # literal text; None on a user turn means "rendered by the protocol's templates"
    video: VideoUse | None = None
    trained: bool = True  # False: an assistant turn kept in the context without loss


@dataclass
class SFTExample:
    sample: Sample
    turns: list[ChatTurn] = field(default_factory=list)
    protocol: str = "video_o3"  # or "open_o3"


def _turn_to_dict(turn: ChatTurn) -> dict[str, Any]:
    video = turn.video
    out: dict[str, Any] = {
        "role": turn.role,
        "text": turn.text,
        "video": None if video is None else {"preset": video.preset, "start_s": video.start_s, "end_s": video.end_s},
    }
    if not turn.trained:  # only when set: unflagged chats keep the bytes they had before the flag existed
        out["trained"] = False
    return out


def example_to_dict(example: SFTExample) -> dict[str, Any]:
    return {
        "protocol": example.protocol,
        "sample": sample_to_dict(example.sample),
        "turns": [_turn_to_dict(t) for t in example.turns],
    }


def _turn_from_dict(raw: Any, index: int, sample_id: str) -> ChatTurn:
    if not isinstance(raw, dict) or raw.get("role") not in ROLES:
        raise SampleError(sample_id, f"bad_turn: turns[{index}] needs a role in {ROLES}")
    text = raw.get("text")
    if text is not None and not isinstance(text, str):
        raise SampleError(sample_id, f"bad_turn: turns[{index}].text must be a string or null")
    if raw["role"] == "assistant" and text is None:
        raise SampleError(sample_id, f"bad_turn: turns[{index}] is an assistant turn without text")
    video = raw.get("video")
    use = None
    if video is not None:
        if not isinstance(video, dict) or video.get("preset") not in PRESET_NAMES:
            raise SampleError(sample_id, f"bad_turn: turns[{index}].video needs a preset in {PRESET_NAMES}")
        start, end = video.get("start_s"), video.get("end_s")
        for value in (start, end):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise SampleError(sample_id, f"bad_turn: turns[{index}].video window must be numbers or null")
        use = VideoUse(video["preset"], None if start is None else float(start), None if end is None else float(end))
    trained = raw.get("trained", True)
    if not isinstance(trained, bool):
        raise SampleError(sample_id, f"bad_turn: turns[{index}].trained must be true or false, got {trained!r}")
    if not trained and raw["role"] != "assistant":
        raise SampleError(sample_id, f"bad_turn: turns[{index}] is a user turn marked trained=false;"
                          " only assistant turns carry loss")
    return ChatTurn(role=raw["role"], text=text, video=use, trained=trained)


def example_from_dict(row: Any) -> SFTExample:
    """Inverse of example_to_dict. Raises SampleError on a malformed row."""
    if not isinstance(row, dict):
        raise SampleError("?", f"bad_row: expected an object, got {type(row).__name__}")
    sample = sample_from_dict(row.get("sample"))
    protocol = row.get("protocol", "video_o3")
    if protocol not in PROTOCOLS:
        raise SampleError(sample.id, f"bad_field: protocol {protocol!r} not in {PROTOCOLS}")
    turns = row.get("turns")
    if not isinstance(turns, list) or not turns:
        raise SampleError(sample.id, "bad_turn: 'turns' must be a non-empty list")
    return SFTExample(sample=sample, turns=[_turn_from_dict(t, i, sample.id) for i, t in enumerate(turns)], protocol=protocol)


def dumps_example(example: SFTExample) -> str:
    """One JSONL line (no newline), keys in a fixed order so equal examples give equal bytes."""
    return json.dumps(example_to_dict(example), ensure_ascii=False)


def write_examples(path: str, examples: Iterable[SFTExample]) -> int:
    """Write examples as JSONL; returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for example in examples:
            fh.write(dumps_example(example) + "\n")
            n += 1
    return n


def read_examples(path: str, skips=None, data_root: str | None = None) -> Iterator[SFTExample]:
    """Examples from a JSONL file written by write_examples, video paths resolved against
    `data_root`. Bad lines are skipped and recorded in `skips` (a SkipLog; one is made if None)."""
    def convert(row: Any, row_id: str) -> SFTExample:
        example = example_from_dict(row)
        ref = example.sample.video
        example.sample.video = replace(ref, path=resolve_video_path(ref.path, data_root, example.sample.id))
        return example

    yield from convert_rows(path, convert, skips if skips is not None else SkipLog(stage=f"read {path}"))
