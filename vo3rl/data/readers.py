"""Dataset readers: every published format in, `Sample`s (or `SFTExample`s) out.

    read_samples(path, fmt, data_root=None, skips=None)  fmt: seeker | stgr | verl | mcq | vstar | samples
    read_sft(path, fmt, data_root=None, skips=None)      fmt: seeker_sft | stgr_sft | chat

Files are JSONL, a .json list, or .parquet (by suffix). `data_root` resolves relative video paths
and refuses paths that leave it. A bad row never stops a reader: it is skipped, counted by reason
and named in `skips` (a SkipLog; pass one to read the counts afterwards). The row layouts are in
the docstrings of seeker.py, stgr.py, bench.py, verl_rows.py, sample_json.py and chat.py.
"""
from __future__ import annotations

import os
from dataclasses import replace
from functools import partial
from typing import Any, Callable, Iterator

from vo3rl.data.bench import mcq_row_to_sample, vstar_row_to_sample
from vo3rl.data.chat import SFTExample, read_examples
from vo3rl.data.jsonl import convert_rows
from vo3rl.data.paths import resolve_video_path
from vo3rl.data.sample_json import sample_from_dict
from vo3rl.data.schema import Sample
from vo3rl.data.seeker import seeker_row_to_sample, seeker_sft_row_to_example
from vo3rl.data.skips import SkipLog
from vo3rl.data.stgr import stgr_row_to_example, stgr_row_to_sample
from vo3rl.data.verl_rows import verl_row_to_sample


def _project_sample(row: Any, row_id: str, data_root: str | None) -> Sample:
    sample = sample_from_dict(row)
    sample.video = replace(sample.video, path=resolve_video_path(sample.video.path, data_root, sample.id))
    return sample


SAMPLE_FORMATS: dict[str, Callable[..., Sample]] = {
    "seeker": seeker_row_to_sample,
    "stgr": stgr_row_to_sample,
    "verl": verl_row_to_sample,
    "mcq": mcq_row_to_sample,
    "vstar": vstar_row_to_sample,
    "samples": _project_sample,
}
SFT_FORMATS: tuple[str, ...] = ("seeker_sft", "stgr_sft", "chat")


def _skip_log(skips: SkipLog | None, path: str) -> SkipLog:
    return skips if skips is not None else SkipLog(stage=f"read {os.path.basename(path)}")


def read_samples(path: str, fmt: str, data_root: str | None = None, skips: SkipLog | None = None, **options) -> Iterator[Sample]:
    """Samples of a row file in format `fmt`. `options` go to the row converter (mcq and vstar
    take `video_ext`, mcq also `source`). Raises ValueError for an unknown format and
    FileNotFoundError for a missing file; bad rows go to `skips`."""
    if fmt not in SAMPLE_FORMATS:
        raise ValueError(f"unknown sample format {fmt!r}; known: {', '.join(SAMPLE_FORMATS)}")
    convert = partial(SAMPLE_FORMATS[fmt], data_root=data_root, **options)
    yield from convert_rows(path, convert, _skip_log(skips, path))


def read_sft(path: str, fmt: str, data_root: str | None = None, skips: SkipLog | None = None) -> Iterator[SFTExample]:
    """SFT examples of a file in format `fmt` (seeker_sft, stgr_sft, or the project's chat JSONL)."""
    log = _skip_log(skips, path)
    if fmt == "chat":
        yield from read_examples(path, log, data_root)
    elif fmt == "seeker_sft":
        yield from convert_rows(path, partial(seeker_sft_row_to_example, data_root=data_root), log)
    elif fmt == "stgr_sft":
        yield from convert_rows(path, partial(stgr_row_to_example, data_root=data_root), log)
    else:
        raise ValueError(f"unknown SFT format {fmt!r}; known: {', '.join(SFT_FORMATS)}")


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
