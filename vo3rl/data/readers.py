"""Dataset readers: every published format in, `Sample`s (or `SFTExample`s) out.

    read_samples(path, fmt, data_root=None, skips=None)  fmt: seeker | stgr | verl | mcq | lvbench | vstar | charades_sta | samples
    read_sft(path, fmt, data_root=None, skips=None)      fmt: seeker_sft | stgr_sft | chat

Files are JSONL, a .json list, or .parquet (by suffix). `data_root` resolves relative video paths
and refuses paths that leave it. A bad row never stops a reader: it is skipped, counted by reason
and named in `skips` (a SkipLog; pass one to read the counts afterwards). The row layouts are in
the docstrings of seeker.py, stgr.py, bench.py, charades.py, verl_rows.py, sample_json.py and chat.py.

The formats are the registries `SAMPLE_FORMATS` and `SFT_FORMATS` (name -> reader function
`(path, skips, data_root, **options)`); a new format is one `add` there.
"""
from __future__ import annotations

import os
from dataclasses import replace
from functools import partial
from typing import Any, Callable, Iterator

from vo3rl.data.bench import mcq_row_to_sample, read_lvbench, vstar_row_to_sample
from vo3rl.data.charades import read_charades
from vo3rl.data.chat import SFTExample, read_examples
from vo3rl.data.jsonl import convert_rows
from vo3rl.data.paths import resolve_video_path
from vo3rl.data.sample_json import sample_from_dict
from vo3rl.data.schema import Sample
from vo3rl.data.seeker import seeker_row_to_sample, seeker_sft_row_to_example
from vo3rl.data.skips import SkipLog
from vo3rl.data.stgr import stgr_row_to_example, stgr_row_to_sample
from vo3rl.data.verl_rows import verl_row_to_sample
from vo3rl.registry import Registry


def _project_sample(row: Any, row_id: str, data_root: str | None) -> Sample:
    sample = sample_from_dict(row)
    sample.video = replace(sample.video, path=resolve_video_path(sample.video.path, data_root, sample.id))
    return sample


# A reader: (path, skips, data_root, **options) -> the file's items; bad rows go to `skips`.
SampleReader = Callable[..., Iterator[Sample]]
SFTReader = Callable[..., Iterator[SFTExample]]
SAMPLE_FORMATS: Registry[SampleReader] = Registry("sample format")
SFT_FORMATS: Registry[SFTReader] = Registry("SFT format")


def _row_reader(row_to_item: Callable[..., Any]) -> Callable[..., Iterator[Any]]:
    """A reader that converts every row of a file with `row_to_item(row, row_id, data_root=…, **options)`."""

    def read(path: str, skips: SkipLog, data_root: str | None = None, **options) -> Iterator[Any]:
        return convert_rows(path, partial(row_to_item, data_root=data_root, **options), skips)

    return read


SAMPLE_FORMATS.add("seeker", _row_reader(seeker_row_to_sample))
SAMPLE_FORMATS.add("stgr", _row_reader(stgr_row_to_sample))
SAMPLE_FORMATS.add("verl", _row_reader(verl_row_to_sample))
SAMPLE_FORMATS.add("mcq", _row_reader(mcq_row_to_sample))
SAMPLE_FORMATS.add("lvbench", read_lvbench)  # a video per line, its questions inside
SAMPLE_FORMATS.add("vstar", _row_reader(vstar_row_to_sample))
SAMPLE_FORMATS.add("charades_sta", read_charades)  # text lines, not JSON rows
SAMPLE_FORMATS.add("samples", _row_reader(_project_sample))
SFT_FORMATS.add("seeker_sft", _row_reader(seeker_sft_row_to_example))
SFT_FORMATS.add("stgr_sft", _row_reader(stgr_row_to_example))
SFT_FORMATS.add("chat", read_examples)  # the project's own chat JSONL: (path, skips, data_root)


def _skip_log(skips: SkipLog | None, path: str) -> SkipLog:
    return skips if skips is not None else SkipLog(stage=f"read {os.path.basename(path)}")


def read_samples(path: str, fmt: str, data_root: str | None = None, skips: SkipLog | None = None, **options) -> Iterator[Sample]:
    """Samples of a row file in format `fmt`. `options` go to the row converter (mcq and vstar
    take `video_ext`, mcq also `source`). Raises ValueError for an unknown format ("unknown sample
    format 'x'; known: …") and FileNotFoundError for a missing file; bad rows go to `skips`."""
    read = SAMPLE_FORMATS.get(fmt)
    yield from read(path, _skip_log(skips, path), data_root, **options)


def read_sft(path: str, fmt: str, data_root: str | None = None, skips: SkipLog | None = None) -> Iterator[SFTExample]:
    """SFT examples of a file in format `fmt` (seeker_sft, stgr_sft, or the project's chat JSONL).
    Raises ValueError for an unknown format ("unknown SFT format 'x'; known: …")."""
    read = SFT_FORMATS.get(fmt)
    yield from read(path, _skip_log(skips, path), data_root)


def read_seeker(path: str, data_root: str | None = None, skips: SkipLog | None = None) -> Iterator[Sample]:
    return read_samples(path, "seeker", data_root, skips)


def read_stgr(path: str, data_root: str | None = None, skips: SkipLog | None = None) -> Iterator[Sample]:
    return read_samples(path, "stgr", data_root, skips)


def read_verl(path: str, data_root: str | None = None, skips: SkipLog | None = None) -> Iterator[Sample]:
    return read_samples(path, "verl", data_root, skips)


def read_mcq(path: str, data_root: str | None = None, skips: SkipLog | None = None, source: str = "mcq", video_ext: str = ".mp4") -> Iterator[Sample]:
    return read_samples(path, "mcq", data_root, skips, source=source, video_ext=video_ext)


def read_vstar(path: str, data_root: str | None = None, skips: SkipLog | None = None, video_ext: str = ".mp4") -> Iterator[Sample]:
    return read_samples(path, "vstar", data_root, skips, video_ext=video_ext)
