"""Seeking metrics: did the episodes crop where the evidence is, and does accuracy depend on it?
Pure functions over episodes; every time is in seconds of the original video.

An episode *needs the tool* when its sample's data type is single_clue_tool or multi_clue_tool (the
evidence is too brief for the global view), is *no-tool* for single_clue_no_tool / multi_clue_no_tool,
and is in neither group otherwise (temporal grounding). Its crops are the segments of its valid tool
calls (`Trajectory.tool_calls`: clipped to the video, as the tool sampled them).

- clue hit: some crop overlaps a ground-truth clue interval by a positive length (touching is no hit);
- clue IoG: the fraction of the clues' total length (their union) that the union of the crops covers;
- all clues hit: every clue interval is overlapped by some crop (what a two-clue question asks for).

The reward's own `clue_iog` component is the same IoG but averaged over every episode the bonus scores,
no-tool ones included; `clue_iog_tool` here averages only the episodes that need the tool.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from vo3rl.data.schema import DataType
from vo3rl.rewards.clue import clue_overlap, merge_intervals

Interval = tuple[float, float]
TOOL_TYPES = (DataType.SINGLE_CLUE_TOOL, DataType.MULTI_CLUE_TOOL)
NO_TOOL_TYPES = (DataType.SINGLE_CLUE_NO_TOOL, DataType.MULTI_CLUE_NO_TOOL)


@dataclass(frozen=True)
class SeekEpisode:
    """What the seeking metrics read of one scored episode. `needs_tool` is None for a sample in
    neither group; `accuracy` is the reward's accuracy component (the value `eval/accuracy` averages)."""

    needs_tool: bool | None
    clues: tuple[Interval, ...] = ()
    crops: tuple[Interval, ...] = ()
    accuracy: float = 0.0


def needs_tool(data_type: DataType | str) -> bool | None:
    """True for the tool data types, False for the no-tool ones, None for any other."""
    data_type = DataType(data_type)
    return True if data_type in TOOL_TYPES else False if data_type in NO_TOOL_TYPES else None


def seek_episode(sample, trajectory, result) -> SeekEpisode:
    """The SeekEpisode of a Sample, its Trajectory and its RewardResult."""
    return SeekEpisode(
        needs_tool=needs_tool(sample.data_type),
        clues=tuple((float(s), float(e)) for s, e in sample.clues),
        crops=tuple((float(c.start_s), float(c.end_s)) for c in trajectory.tool_calls),
        accuracy=float(result.components.get("accuracy", 0.0)),
    )


def has_clues(episode: SeekEpisode) -> bool:
    """Whether the episode has clue time to find (clues of zero length or reversed do not count)."""
    return bool(merge_intervals(episode.clues))


def clue_iog(episode: SeekEpisode) -> float:
    """Covered fraction of the clues' total length, in [0, 1]; 0 without crops or clues."""
    return clue_overlap(episode.crops, episode.clues).iog


def clue_hit(episode: SeekEpisode) -> bool:
    return clue_iog(episode) > 0.0


def all_clues_hit(episode: SeekEpisode) -> bool:
    """Every clue of positive length is overlapped by a crop (False when there is none)."""
    clues = merge_intervals(episode.clues)
    return bool(clues) and all(clue_overlap(episode.crops, [clue]).iog > 0.0 for clue in clues)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def seeking_metrics(episodes: Sequence[SeekEpisode]) -> dict[str, float]:
    """Means over `episodes`; a key whose group is empty is left out rather than reported as 0.

    `tool_calls` (valid calls per episode, all episodes); per group, `accuracy_tool` / `accuracy_no_tool`
    and `tool_samples_tool_calls` / `no_tool_samples_tool_calls`; `clue_hit_rate`, `clue_all_hit_rate`,
    `clue_iog_tool` (over the episodes that need the tool and have clue time to find). Call counts end in
    `tool_calls` so `vo3rl report` tables them instead of drawing them beside the fractions."""
    if not episodes:
        return {}
    out: dict[str, float] = {"tool_calls": _mean([len(e.crops) for e in episodes])}
    for name, flag in (("tool", True), ("no_tool", False)):
        group = [e for e in episodes if e.needs_tool is flag]
        if group:
            out[f"accuracy_{name}"] = _mean([e.accuracy for e in group])
            out[f"{name}_samples_tool_calls"] = _mean([len(e.crops) for e in group])
    seeking = [e for e in episodes if e.needs_tool and has_clues(e)]
    if seeking:
        out["clue_hit_rate"] = _mean([float(clue_hit(e)) for e in seeking])
        out["clue_all_hit_rate"] = _mean([float(all_clues_hit(e)) for e in seeking])
        out["clue_iog_tool"] = _mean([clue_iog(e) for e in seeking])
    return out
